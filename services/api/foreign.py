"""Foreign kinds in the api: their records in KV and the plan of one apply.

Design: a foreign manifest (KServe InferenceService, Seldon v1 SeldonDeployment, ...) is stored
as written in KV_FOREIGN (``ForeignRecord``, key ``<Kind>.<namespace>.<name>``) together with
what its importer derived: the native resources it owns (each carries ``meta.owner``), the
notes and problems, and the importer's memo. ``plan`` is the pure part of an apply: it parses
every document, translates the foreign ones (seeing the stored foreign resources and every
document of the same apply), re-derives the stored resources that depend on a changed kind (an
InferenceService when a ServingRuntime changes, a TrainedModel when its InferenceService
does), and checks that no two owners claim one native resource -- all before anything is
written, so an invalid document fails the whole apply, naming its index and field.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import structlog

from modelplane.libs.errors import InvalidError, ModelplaneError
from modelplane.libs.resources import importers
from modelplane.libs.resources.importers.base import (
    DEFAULT_NAMESPACE,
    ForeignDocument,
    ForeignRef,
    Importer,
    Problem,
    Translation,
)
from modelplane.libs.resources.importers.namespaces import translate_in_namespace
from modelplane.libs.resources.manifests import parse_manifest
from modelplane.libs.resources.namespacing import CLUSTER_WIDE, check_namespace, is_default
from modelplane.libs.resources.types import KINDS, Kind, Model, Resource
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2
from modelplane.services.api.kinds import validate

log = structlog.get_logger(__name__)

# Native kinds in the order derived resources are deleted (users of a resource before it).
DELETE_ORDER: Final[tuple[Kind, ...]] = (
    "Experiment",
    "InferenceGraph",
    "Pipeline",
    "Model",
    "Server",
    "ServerConfig",
)


# What the api accepts as a foreign resource's name before its importer checks it further (each
# kind has its own rule: an InferenceService's is a DNS label, a TrainedModel's allows '_').
_FOREIGN_NAME: Final = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_MAX_NAME: Final = 253


def owner_of(ref: ForeignRef) -> str:
    """What a derived resource's ``meta.owner`` says: ``<Kind>/<namespace>/<name>``."""
    return f"{ref.kind}/{ref.namespace}/{ref.name}"


@dataclass(frozen=True, slots=True)
class ForeignEntry:
    """A stored foreign resource, decoded."""

    ref: ForeignRef
    api_version: str
    manifest: Mapping[str, Any]
    generation: int = 1
    created_at: str = ""
    owned: tuple[tuple[Kind, str], ...] = ()
    primary: str = ""
    notes: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    memo: Mapping[str, Any] = field(default_factory=dict)

    def document(self) -> ForeignDocument:
        return ForeignDocument(self.ref, self.api_version, self.manifest, self.generation)


def entry_to_pb(entry: ForeignEntry) -> resources_pb2.ForeignRecord:
    return resources_pb2.ForeignRecord(
        api_version=entry.api_version,
        kind=entry.ref.kind,
        name=entry.ref.name,
        namespace=entry.ref.namespace,
        manifest_json=json.dumps(entry.manifest, sort_keys=False),
        generation=entry.generation,
        created_at=entry.created_at,
        owned=[resources_pb2.OwnedRef(kind=k, name=n) for k, n in entry.owned],
        primary=entry.primary,
        notes=list(entry.notes),
        problems=[
            resources_pb2.ImportProblem(field=p.field, reason=p.reason, message=p.message)
            for p in entry.problems
        ],
        memo_json=json.dumps(dict(entry.memo)),
    )


def entry_from_pb(msg: resources_pb2.ForeignRecord) -> ForeignEntry:
    return ForeignEntry(
        ref=ForeignRef(msg.kind, msg.name, msg.namespace or DEFAULT_NAMESPACE),
        api_version=msg.api_version,
        manifest=json.loads(msg.manifest_json or "{}"),
        generation=msg.generation,
        created_at=msg.created_at,
        owned=tuple((_native_kind(o.kind), o.name) for o in msg.owned),
        primary=msg.primary,
        notes=tuple(msg.notes),
        problems=tuple(Problem(p.field, p.reason, p.message) for p in msg.problems),
        memo=json.loads(msg.memo_json or "{}"),
    )


def _native_kind(value: str) -> Kind:
    for kind in KINDS:
        if kind == value:
            return kind
    raise ValueError(f"not a native kind: {value!r}")


class ForeignStore:
    """KV_FOREIGN: the foreign resources as applied (the api is its only reader and writer)."""

    def __init__(self, bucket: TypedBucket[resources_pb2.ForeignRecord]) -> None:
        self._bucket = bucket

    async def all(self) -> list[tuple[ForeignEntry, int]]:
        """Every stored foreign resource with its KV revision, by key."""
        items = await self._bucket.items()
        return sorted(((entry_from_pb(i.value), i.revision) for i in items), key=lambda e: e[0].ref.key())

    async def get(self, ref: ForeignRef) -> tuple[ForeignEntry, int] | None:
        found = await self._bucket.try_get(ref.key())
        return None if found is None else (entry_from_pb(found.value), found.revision)

    async def put(self, entry: ForeignEntry, revision: int | None) -> None:
        """Create (``revision`` None) or update under ``revision`` (ConflictError if it moved)."""
        if revision is None:
            await self._bucket.create(entry.ref.key(), entry_to_pb(entry))
        else:
            await self._bucket.update(entry.ref.key(), entry_to_pb(entry), revision)

    async def delete(self, ref: ForeignRef) -> None:
        await self._bucket.delete(ref.key())


# ---- parsing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForeignManifest:
    """A foreign document that parsed: which importer reads it, and its identity."""

    importer: Importer
    ref: ForeignRef
    api_version: str
    manifest: Mapping[str, Any]


def foreign_manifest(doc: Any) -> ForeignManifest | None:
    """The foreign identity of ``doc``; None when it is native (or another kind ``parse_manifest``
    reads). InvalidError naming ``metadata.*`` when its identity is malformed."""
    if not isinstance(doc, Mapping):
        return None
    api, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api, str) or not isinstance(kind, str):
        return None
    importer = importers.importer_for(api, kind)
    if importer is None:
        return None
    metadata = doc.get("metadata")
    if not isinstance(metadata, Mapping):
        raise InvalidError("is required (a mapping with a name)", field="metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidError("is required", field="metadata.name")
    if len(name) > _MAX_NAME or not _FOREIGN_NAME.match(name):
        raise InvalidError(
            f"{name!r} is not a Kubernetes object name (letters, digits, '-', '_' and '.', "
            f"starting and ending with a letter or digit, at most {_MAX_NAME})",
            field="metadata.name",
        )
    namespace = check_namespace(metadata.get("namespace"))
    if importer.cluster_scoped:
        namespace = ""
    return ForeignManifest(importer, ForeignRef(kind, name, namespace or ""), api, dict(doc))


def with_index(exc: ModelplaneError, index: int, count: int) -> ModelplaneError:
    """``exc`` naming the document it came from when the apply had several."""
    if count <= 1:
        return exc
    where = f"documents[{index}]"
    renamed = type(exc)(exc.message, field=f"{where}.{exc.field}" if exc.field else where)
    return renamed


# ---- planning -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedForeign:
    """One foreign resource to store, with its new translation and what it replaces."""

    parsed: ForeignManifest
    translation: Translation
    previous: ForeignEntry | None
    revision: int | None
    # Index of the document in the apply; None for a stored dependent re-derived.
    index: int | None


@dataclass(frozen=True, slots=True)
class ApplyPlan:
    """Everything one apply will write, in order: native documents, then foreign resources."""

    natives: tuple[tuple[int, Resource], ...]
    foreign: tuple[PlannedForeign, ...]


def plan(docs: Sequence[Any], stored: Sequence[tuple[ForeignEntry, int]]) -> ApplyPlan:
    """Parse and translate every document (see the module docstring). Raises the first error,
    naming the document's index when there are several."""
    natives: list[tuple[int, Resource]] = []
    parsed: list[tuple[int, ForeignManifest]] = []
    for index, doc in enumerate(docs):
        try:
            found = foreign_manifest(doc)
            if found is None:
                natives.append((index, parse_manifest(doc)))
            else:
                parsed.append((index, found))
        except ModelplaneError as exc:
            raise with_index(exc, index, len(docs)) from exc
    _check_unique(parsed, len(docs))

    by_key = {entry.ref.key(): (entry, revision) for entry, revision in stored}
    applied_keys = {item.ref.key() for _, item in parsed}
    documents = [e.document() for e, _ in stored if e.ref.key() not in applied_keys]
    documents += [ForeignDocument(item.ref, item.api_version, item.manifest) for _, item in parsed]

    planned: list[PlannedForeign] = []
    for index, item in parsed:
        previous = by_key.get(item.ref.key())
        try:
            translation = translate_in_namespace(
                item.importer,
                item.ref,
                item.api_version,
                item.manifest,
                documents,
                previous[0].memo if previous else {},
            )
        except ModelplaneError as exc:
            raise with_index(exc, index, len(docs)) from exc
        planned.append(
            PlannedForeign(
                item,
                translation,
                previous[0] if previous else None,
                previous[1] if previous else None,
                index,
            )
        )
    planned += _dependents({item.ref.kind for _, item in parsed}, applied_keys, stored, documents)
    return ApplyPlan(tuple(natives), tuple(planned))


def dependents_of(
    kinds: set[str], stored: Sequence[tuple[ForeignEntry, int]], exclude: set[str]
) -> list[PlannedForeign]:
    """Stored resources to re-derive after resources of ``kinds`` changed or were deleted."""
    remaining = [(e, r) for e, r in stored if e.ref.key() not in exclude]
    return _dependents(kinds, exclude, stored, [e.document() for e, _ in remaining])


def _dependents(
    changed: set[str],
    exclude: set[str],
    stored: Sequence[tuple[ForeignEntry, int]],
    documents: Sequence[ForeignDocument],
) -> list[PlannedForeign]:
    """Re-translate stored resources whose importer depends on a changed kind, transitively
    (a ServingRuntime -> its InferenceServices -> their TrainedModels). A dependent that no
    longer translates keeps what it had (logged): another resource's change never fails an
    apply or loses state."""
    out: list[PlannedForeign] = []
    done = set(exclude)
    kinds = set(changed)
    while kinds:
        next_kinds: set[str] = set()
        for entry, revision in stored:
            key = entry.ref.key()
            importer = importers.importer_of_kind(entry.ref.kind)
            if key in done or importer is None or not kinds.intersection(importer.depends_on):
                continue
            done.add(key)
            parsed = ForeignManifest(importer, entry.ref, entry.api_version, entry.manifest)
            try:
                translation = translate_in_namespace(
                    importer, entry.ref, entry.api_version, entry.manifest, documents, entry.memo
                )
            except ModelplaneError as exc:
                log.warning("foreign_rederive_failed", resource=str(entry.ref), error=str(exc))
                continue
            out.append(PlannedForeign(parsed, translation, entry, revision, None))
            next_kinds.add(entry.ref.kind)
        kinds = next_kinds
    return out


def _check_unique(parsed: Iterable[tuple[int, ForeignManifest]], count: int) -> None:
    seen: dict[str, int] = {}
    for index, item in parsed:
        key = item.ref.key()
        if key in seen:
            raise with_index(
                InvalidError(
                    f"{item.ref} appears twice in one apply (documents {seen[key]} and {index})",
                    field="metadata.name",
                ),
                index,
                count,
            )
        seen[key] = index


def derived(planned: PlannedForeign) -> list[Resource]:
    """The translation's resources, each marked as owned by its foreign resource and placed in
    its namespace (their names are already the namespace's service-wide names, see
    ``importers.namespaces``; ServerConfigs belong to none)."""
    owner = owner_of(planned.parsed.ref)
    namespace = "" if is_default(planned.parsed.ref.namespace) else planned.parsed.ref.namespace
    return [
        dataclasses.replace(
            r,
            meta=dataclasses.replace(
                r.meta, owner=owner, namespace="" if r.kind in CLUSTER_WIDE else namespace
            ),
        )
        for r in planned.translation.resources
    ]


def new_entry(planned: PlannedForeign, created_at: str) -> ForeignEntry:
    """The record to store for ``planned``: generation bumped when the manifest changed."""
    previous = planned.previous
    manifest = planned.parsed.manifest
    if previous is None:
        generation, created = 1, created_at
    else:
        changed = _content(previous.manifest) != _content(manifest)
        generation = previous.generation + (1 if changed else 0)
        created = previous.created_at or created_at
    translation = planned.translation
    return ForeignEntry(
        ref=planned.parsed.ref,
        api_version=planned.parsed.api_version,
        manifest=manifest,
        generation=generation,
        created_at=created,
        owned=tuple((r.kind, r.meta.name) for r in translation.resources),
        primary=translation.primary,
        notes=translation.notes,
        problems=translation.problems,
        memo=translation.memo,
    )


def _content(manifest: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """What versions a foreign resource (spec, labels, annotations, apiVersion)."""
    metadata = manifest.get("metadata") if isinstance(manifest.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    return (
        json.dumps(manifest.get("spec"), sort_keys=True),
        json.dumps(metadata.get("labels"), sort_keys=True),
        json.dumps(metadata.get("annotations"), sort_keys=True),
        str(manifest.get("apiVersion")),
    )


def stale(previous: ForeignEntry | None, now: Iterable[tuple[Kind, str]]) -> list[tuple[Kind, str]]:
    """What ``previous`` owned that the new translation no longer produces, in delete order."""
    if previous is None:
        return []
    keep = set(now)
    gone = [ref for ref in previous.owned if ref not in keep]
    return sorted(gone, key=lambda ref: DELETE_ORDER.index(ref[0]))


def foreign_ref(kind: str, name: str, namespace: str) -> ForeignRef:
    importer = importers.importer_of_kind(kind)
    if importer is None:
        raise InvalidError(f"unknown kind {kind!r}", field="kind")
    if not name:
        raise InvalidError("is required", field="name")
    return ForeignRef(kind, name, "" if importer.cluster_scoped else (namespace or DEFAULT_NAMESPACE))


def validate_derived(resource: Resource) -> Resource:
    """A derived resource checked like a user's (InvalidError saying which one, should an
    importer produce something the native rules refuse)."""
    try:
        checked = validate(resource)
    except InvalidError as exc:
        raise InvalidError(
            f"the {resource.kind} {resource.meta.name} it becomes is invalid: {exc}", field=exc.field
        ) from exc
    return dataclasses.replace(checked, meta=dataclasses.replace(checked.meta, owner=resource.meta.owner))


def replacing(resource: Resource) -> Callable[[Resource | None], Resource]:
    return lambda _existing: resource


def keeping_scale(resource: Resource) -> Callable[[Resource | None], Resource]:
    return lambda existing: _keep_scaled(existing, resource)


def _keep_scaled(existing: Resource | None, incoming: Resource) -> Resource:
    """A derived autoscaled Model keeps the replicas the autoscaler chose (within the new
    bounds) when its owner changes; everything else is what the owner says."""
    if not (isinstance(existing, Model) and isinstance(incoming, Model)):
        return incoming
    if existing.spec.autoscaling is None or incoming.spec.autoscaling is None:
        return incoming
    spec = incoming.spec
    replicas = max(spec.min_replicas, existing.spec.replicas)
    if spec.max_replicas:
        replicas = min(replicas, spec.max_replicas)
    return dataclasses.replace(incoming, spec=dataclasses.replace(spec, replicas=replicas))
