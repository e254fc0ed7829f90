"""The kinds the api stores: their spellings, KV buckets and protobuf codecs, and the one
validation every typed resource goes through (``validate``: render to a manifest, parse back).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Final

from google.protobuf.message import Message

from modelplane.libs import subjects
from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.libs.resources import convert, importers
from modelplane.libs.resources.manifests import parse_manifest, to_manifest
from modelplane.libs.resources.namespacing import CLUSTER_WIDE, service_name
from modelplane.libs.resources.types import KINDS, Kind, Resource
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2

BUCKETS: Final[Mapping[str, str]] = {
    "Model": subjects.KV_MODELS,
    "Server": subjects.KV_SERVERS,
    "ServerConfig": subjects.KV_SERVER_CONFIGS,
    "Experiment": subjects.KV_EXPERIMENTS,
    "Pipeline": subjects.KV_PIPELINES,
    "InferenceGraph": subjects.KV_INFERENCE_GRAPHS,
}
# Short spellings beyond "<kind>" and "<kind>s" (any case).
_EXTRA_ALIASES: Final[Mapping[Kind, tuple[str, ...]]] = {
    "ServerConfig": ("server-config",),
    "InferenceGraph": ("inference-graph", "ig", "igs", "graph", "graphs"),
}
# Spellings accepted for a kind: "Model", "model", "models", "serverconfigs", "ig", ...
_KIND_ALIASES: Final[Mapping[str, Kind]] = {
    alias: kind
    for kind in KINDS
    for alias in (kind.lower(), kind.lower() + "s", *_EXTRA_ALIASES.get(kind, ()))
}


def parse_kind(value: str) -> Kind:
    """The canonical kind for a user's spelling; InvalidError naming the field ``kind`` otherwise."""
    kind = _KIND_ALIASES.get(value.strip().lower())
    if kind is None:
        raise InvalidError(f"unknown kind {value!r}; supported: {', '.join(KINDS)}", field="kind")
    return kind


def parse_any_kind(value: str) -> str:
    """A native kind (``parse_kind``) or a foreign one (``InferenceService``, ``sdep``, ...)."""
    spelled = value.strip().lower()
    if spelled in _KIND_ALIASES:
        return _KIND_ALIASES[spelled]
    foreign = importers.foreign_kind_of(spelled)
    if foreign is not None:
        return foreign
    supported = ", ".join((*KINDS, *importers.foreign_kinds()))
    raise InvalidError(f"unknown kind {value!r}; supported: {supported}", field="kind")


def service_name_of(kind: Kind, name: str, namespace: str) -> str:
    """The service-wide name of a native resource a caller names in ``namespace``."""
    return name if kind in CLUSTER_WIDE else service_name(name, namespace)


def is_native(kind: str) -> bool:
    return kind in KINDS


@dataclasses.dataclass(frozen=True, slots=True)
class _Codec:
    """How one kind is stored: its protobuf message type and the to/from converters."""

    message: type[Message]
    to_pb: Callable[[Any], Message]
    from_pb: Callable[[Any], Resource]


CODECS: Final[Mapping[str, _Codec]] = {
    "Model": _Codec(resources_pb2.Model, convert.model_to_pb, convert.model_from_pb),
    "Server": _Codec(resources_pb2.Server, convert.server_to_pb, convert.server_from_pb),
    "ServerConfig": _Codec(
        resources_pb2.ServerConfig, convert.server_config_to_pb, convert.server_config_from_pb
    ),
    "Experiment": _Codec(resources_pb2.Experiment, convert.experiment_to_pb, convert.experiment_from_pb),
    "Pipeline": _Codec(resources_pb2.Pipeline, convert.pipeline_to_pb, convert.pipeline_from_pb),
    "InferenceGraph": _Codec(resources_pb2.InferenceGraph, convert.graph_to_pb, convert.graph_from_pb),
}


def normalized(resource: Resource) -> Resource:
    """The resource as it reads back from KV (proto defaults applied), for change detection."""
    codec = CODECS[resource.kind]
    return codec.from_pb(codec.to_pb(resource))


def same_content(a: Resource, b: Resource) -> bool:
    return a.spec == b.spec and a.meta.labels == b.meta.labels and a.meta.annotations == b.meta.annotations


def validate(resource: Resource) -> Resource:
    """Check a typed resource with the manifest rules (InvalidError naming the field)."""
    parsed = parse_manifest(to_manifest(resource))
    return dataclasses.replace(
        parsed, meta=dataclasses.replace(parsed.meta, imported_from=resource.meta.imported_from)
    )


async def read_resource(bucket: TypedBucket[Any], kind: Kind, name: str) -> Resource:
    """The stored resource; NotFoundError naming it otherwise."""
    found = await bucket.try_get(name)
    if found is None:
        raise NotFoundError(f"{kind} {name!r} not found")
    return CODECS[kind].from_pb(found.value)


async def read_all(bucket: TypedBucket[Any], kind: Kind) -> list[Resource]:
    """Every stored resource of ``kind``, by name."""
    codec = CODECS[kind]
    items = await bucket.items()
    return sorted((codec.from_pb(item.value) for item in items), key=lambda r: r.meta.name)
