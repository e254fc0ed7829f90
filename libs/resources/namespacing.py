"""Namespaces of native resources: one service-wide name per (namespace, name).

Every service (scheduler, agents, gateway, dataflow, autoscaler) knows a resource by one name
per kind. A resource applied in namespace ``ns`` other than ``default`` is therefore known as
``<ns>--<name>`` (``native_name``), and so is every name it refers to, since references stay
within a namespace: a Model's ``explainer.modelRef``; an Experiment's ``default``, candidates
and mirror; a Pipeline's step names and the names its tensor references start with
(``s.outputs.T``, ``p.inputs``, ``q.step.s.outputs``); an InferenceGraph's ``serviceName``
steps. Servers and ServerConfigs are cluster-wide, one pool of model servers shared by every
namespace (a Model's ``server`` names one as it is), never renamed. Names in ``default`` are unchanged, so state from
before namespaces is the ``default`` namespace as it is.

``into_namespace`` renames a manifest that way (``parse_manifest`` calls it), ``out_of_namespace``
undoes it (``to_manifest``), so users read and write the names they chose, and ``validate``'s
round trip (render, parse) keeps the service-wide names. A namespace and name that would not fit
in 63 characters are refused rather than shortened: the renaming must be undone exactly.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Final

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.types import NAME_MAX_LENGTH, NAME_PATTERN

DEFAULT_NAMESPACE: Final = "default"
SEPARATOR: Final = "--"
# Kinds that belong to no namespace: the model servers are one shared pool (Seldon v2's samples
# in seldon-mesh name ``server: mlserver``, the pool `up` starts), like nodes in a cluster.
CLUSTER_WIDE: Final = frozenset({"ServerConfig", "Server"})


def is_default(namespace: str) -> bool:
    return namespace in ("", DEFAULT_NAMESPACE)


def native_name(name: str, namespace: str) -> str:
    """The service-wide name of ``name`` in ``namespace`` (unchanged in ``default``). Past 63
    characters the end is a hash (foreign resources' derived names; native manifests refuse
    such names instead, see ``into_namespace``)."""
    if is_default(namespace):
        return name
    full = f"{namespace}{SEPARATOR}{name}"
    if len(full) <= NAME_MAX_LENGTH:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: NAME_MAX_LENGTH - len(digest) - 1].rstrip('-')}-{digest}"


def service_name(name: str, namespace: str) -> str:
    """The service-wide name a user's ``name`` in ``namespace`` stands for; a name already
    carrying the namespace is kept (clients may pass either; ``into_namespace`` refuses names
    that would make the two readings differ)."""
    if is_default(namespace) or name.startswith(f"{namespace}{SEPARATOR}"):
        return name
    return native_name(name, namespace)


def user_name(name: str, namespace: str) -> str:
    """``native_name`` undone: the name as its user wrote it."""
    if is_default(namespace):
        return name
    return name.removeprefix(f"{namespace}{SEPARATOR}")


def check_namespace(value: Any, field: str = "metadata.namespace") -> str:
    """The namespace a manifest names ("default" when none); InvalidError naming ``field``."""
    if value is None or value == "":
        return DEFAULT_NAMESPACE
    if not isinstance(value, str) or len(value) > NAME_MAX_LENGTH or not NAME_PATTERN.match(value):
        raise InvalidError(
            f"{value!r} is not a namespace name (lower-case letters, digits and '-', at most "
            f"{NAME_MAX_LENGTH})",
            field=field,
        )
    return value


def into_namespace(doc: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """A native (or Seldon v2) manifest of ``namespace`` with service-wide names."""
    out = copy.deepcopy(dict(doc))
    if is_default(namespace) or out.get("kind") in CLUSTER_WIDE:
        return out

    def prefixed(name: Any, field: str) -> Any:
        if not isinstance(name, str) or not name:
            return name
        full = f"{namespace}{SEPARATOR}{name}"
        if name.startswith(f"{namespace}{SEPARATOR}"):
            raise InvalidError(
                f"{name!r} starts with its namespace and {SEPARATOR!r}, which is how the services "
                f"name resources of namespace {namespace!r}: choose another name",
                field=field,
            )
        if len(full) > NAME_MAX_LENGTH:
            raise InvalidError(
                f"{name!r} in namespace {namespace!r} is {full!r} to the services, longer than "
                f"{NAME_MAX_LENGTH} characters: use a shorter name or namespace",
                field=field,
            )
        return full

    _rename(out, prefixed)
    return out


def out_of_namespace(doc: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """``into_namespace`` undone (a rendered manifest, as its user wrote it)."""
    out = copy.deepcopy(dict(doc))
    if is_default(namespace) or out.get("kind") in CLUSTER_WIDE:
        return out

    def stripped(name: Any, _field: str) -> Any:
        return user_name(name, namespace) if isinstance(name, str) else name

    _rename(out, stripped)
    return out


Rename = Callable[[Any, str], Any]


def _rename(doc: dict[str, Any], rename: Rename) -> None:
    """Apply ``rename`` to the resource's name and every name it refers to, in place."""
    metadata = doc.get("metadata")
    if isinstance(metadata, dict):
        metadata["name"] = rename(metadata.get("name"), "metadata.name")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return
    kind = doc.get("kind")
    if kind == "Model":
        explainer = spec.get("explainer")
        if isinstance(explainer, dict) and "modelRef" in explainer:
            explainer["modelRef"] = rename(explainer["modelRef"], "spec.explainer.modelRef")
    elif kind == "Experiment":
        if "default" in spec:
            spec["default"] = rename(spec["default"], "spec.default")
        for i, candidate in enumerate(_dicts(spec.get("candidates"))):
            if "name" in candidate:
                candidate["name"] = rename(candidate["name"], f"spec.candidates[{i}].name")
        mirror = spec.get("mirror")
        if isinstance(mirror, dict) and "name" in mirror:
            mirror["name"] = rename(mirror["name"], "spec.mirror.name")
    elif kind == "Pipeline":
        _rename_pipeline(spec, rename)
    elif kind == "InferenceGraph":
        nodes = spec.get("nodes")
        for node_name, node in nodes.items() if isinstance(nodes, dict) else ():
            for i, step in enumerate(_dicts(node.get("steps") if isinstance(node, dict) else None)):
                if "serviceName" in step:
                    field = f"spec.nodes.{node_name}.steps[{i}].serviceName"
                    step["serviceName"] = rename(step["serviceName"], field)


def _rename_pipeline(spec: dict[str, Any], rename: Rename) -> None:
    for i, step in enumerate(_dicts(spec.get("steps"))):
        where = f"spec.steps[{i}]"
        if "name" in step:
            step["name"] = rename(step["name"], f"{where}.name")
        for key in ("inputs", "triggers"):
            if isinstance(step.get(key), list):
                step[key] = [_reference(r, rename, f"{where}.{key}[{j}]") for j, r in enumerate(step[key])]
        _rename_map(step, rename, f"{where}.tensorMap")
    section = spec.get("input")
    if isinstance(section, dict):
        for key in ("externalInputs", "externalTriggers"):
            if isinstance(section.get(key), list):
                section[key] = [
                    _reference(r, rename, f"spec.input.{key}[{j}]") for j, r in enumerate(section[key])
                ]
        _rename_map(section, rename, "spec.input.tensorMap")
    section = spec.get("output")
    if isinstance(section, dict):
        if isinstance(section.get("steps"), list):
            section["steps"] = [
                _reference(r, rename, f"spec.output.steps[{j}]") for j, r in enumerate(section["steps"])
            ]
        _rename_map(section, rename, "spec.output.tensorMap")


def _rename_map(section: dict[str, Any], rename: Rename, field: str) -> None:
    mapping = section.get("tensorMap")
    if isinstance(mapping, dict):
        section["tensorMap"] = {_reference(k, rename, field): v for k, v in mapping.items()}


def _reference(text: Any, rename: Rename, field: str) -> Any:
    """A tensor reference with its resource names renamed: the first token (a step, this
    pipeline or another pipeline) and, in ``q.step.s...``, the step after ``step``."""
    if not isinstance(text, str) or not text.strip():
        return text
    tokens = text.strip().split(".")
    tokens[0] = rename(tokens[0], field)
    if len(tokens) >= 3 and tokens[1] == "step":
        tokens[2] = rename(tokens[2], field)
    return ".".join(tokens)


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
