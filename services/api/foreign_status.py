"""The status of foreign resources, computed on read from their native resources' statuses.

Design: the importer of each kind owns its status shape (``Importer.status``); this module only
gathers what it needs: the stored foreign record, the native resources it owns (read back from
KV, so the importer sees what is really applied) and the status of every native resource by
(kind, name) -- owned or not, since a TrainedModel's status depends on its parent's model.
Statuses are read once per call, however many foreign resources are shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from modelplane.libs.resources import importers
from modelplane.libs.resources.importers.base import (
    Condition,
    NativeStatus,
    StatusContext,
    Translation,
)
from modelplane.libs.resources.importers.namespaces import namespaced_view
from modelplane.libs.resources.types import Kind, Resource
from modelplane.libs.store import TypedBucket
from modelplane.proto import state_pb2
from modelplane.services.api.foreign import ForeignEntry
from modelplane.services.api.kinds import CODECS
from modelplane.services.api.statuses import StatusReader

log = structlog.get_logger(__name__)

# Kinds whose statuses a foreign status may read.
_STATUS_KINDS: tuple[Kind, ...] = ("Model", "Server", "Pipeline", "Experiment", "InferenceGraph")


@dataclass(frozen=True, slots=True)
class ForeignView:
    """A foreign resource as its users see it: what they applied, and its status."""

    entry: ForeignEntry
    status: Mapping[str, Any]

    def manifest(self) -> dict[str, Any]:
        """The manifest as applied, with metadata.generation (and namespace) filled and the
        status attached: what ``kubectl get -o yaml`` would show."""
        # Kubernetes' order (the manifest may have come through a protobuf Struct, which has none).
        first = ("apiVersion", "kind", "metadata", "spec")
        manifest = self.entry.manifest
        out = {key: manifest[key] for key in first if key in manifest}
        out.update({key: value for key, value in manifest.items() if key not in first and key != "status"})
        metadata = dict(out.get("metadata") or {})
        metadata["generation"] = self.entry.generation
        if self.entry.ref.namespace:
            metadata["namespace"] = self.entry.ref.namespace
        if self.entry.created_at:
            metadata["creationTimestamp"] = self.entry.created_at
        out["metadata"] = metadata
        out["status"] = dict(self.status)
        return out


def native_status(msg: state_pb2.ResourceStatus) -> NativeStatus:
    return NativeStatus(
        kind=msg.kind,
        name=msg.name,
        state=msg.state,
        reason=msg.reason,
        available_replicas=msg.available_replicas,
        total_replicas=msg.total_replicas,
        generation=msg.generation,
        observed_generation=msg.observed_generation,
        last_change=msg.last_change,
        conditions=tuple(Condition(c.type, c.status, c.reason, c.last_change) for c in msg.conditions),
    )


async def foreign_views(
    entries: Sequence[ForeignEntry],
    resources: Mapping[Kind, TypedBucket[Any]],
    statuses: StatusReader,
    context: StatusContext,
) -> list[ForeignView]:
    if not entries:
        return []
    known: dict[tuple[str, str], NativeStatus] = {}
    for kind in _STATUS_KINDS:
        for msg in await statuses.list_status(kind):
            known[(kind, msg.name)] = native_status(msg)

    def lookup(kind: str, name: str) -> NativeStatus:
        return known.get((kind, name)) or NativeStatus(kind=kind, name=name, found=False)

    views: list[ForeignView] = []
    for entry in entries:
        importer = importers.importer_of_kind(entry.ref.kind)
        if importer is None:  # an importer removed since: show what was applied
            views.append(ForeignView(entry, {}))
            continue
        translation = Translation(
            resources=tuple(await _owned(entry, resources)),
            primary=entry.primary,
            notes=entry.notes,
            problems=entry.problems,
            memo=entry.memo,
        )
        # The importer names natives from its namespaced view (see importers.namespaces).
        status = importer.status(namespaced_view(entry.document()), translation, lookup, context)
        views.append(ForeignView(entry, status))
    return views


async def _owned(entry: ForeignEntry, resources: Mapping[Kind, TypedBucket[Any]]) -> list[Resource]:
    out: list[Resource] = []
    for kind, name in entry.owned:
        found = await resources[kind].try_get(name)
        if found is None:
            log.debug("foreign_owned_missing", resource=str(entry.ref), kind=kind, name=name)
            continue
        out.append(CODECS[kind].from_pb(found.value))
    return out
