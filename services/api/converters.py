"""Protobuf <-> our types at the gRPC edge (resources reuse ``libs.resources.convert``)."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format, struct_pb2

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.convert import resource_from_pb, resource_to_pb
from modelplane.libs.resources.types import Resource
from modelplane.proto import agent_pb2, control_pb2, resources_pb2, state_pb2
from modelplane.services.api.foreign import ForeignEntry
from modelplane.services.api.foreign_status import ForeignView

__all__ = [
    "apply_response",
    "download_from_progress",
    "follow_event",
    "foreign_to_pb",
    "manifest_from_struct",
    "resource_from_pb",
    "resource_to_pb",
    "resources_to_pb",
]


def _restore_ints(value: Any) -> Any:
    """Struct stores every number as a double: give integral ones back their int type."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _restore_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_ints(v) for v in value]
    return value


def manifest_from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    """The manifest a client sent as a Struct, as the dict ``parse_manifest`` expects."""
    if not struct.fields:
        raise InvalidError("is empty", field="manifest")
    return dict(_restore_ints(json_format.MessageToDict(struct)))


def manifest_to_struct(manifest: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(manifest)
    return struct


def apply_response(resource: Resource | ForeignEntry, outcome: str) -> control_pb2.ApplyResponse:
    if isinstance(resource, ForeignEntry):
        return control_pb2.ApplyResponse(resource=foreign_to_pb(resource), outcome=outcome)
    return control_pb2.ApplyResponse(resource=resource_to_pb(resource), outcome=outcome)


def foreign_to_pb(entry: ForeignEntry, view: ForeignView | None = None) -> control_pb2.Resource:
    """A foreign resource as the api answers it: the manifest as applied (with its status when
    ``view`` is given)."""
    manifest = view.manifest() if view is not None else dict(entry.manifest)
    status = manifest.pop("status", None)
    return control_pb2.Resource(
        foreign=control_pb2.ForeignResource(
            api_version=entry.api_version,
            kind=entry.ref.kind,
            name=entry.ref.name,
            namespace=entry.ref.namespace,
            manifest_json=json.dumps(manifest),
            status_json=json.dumps(status) if status is not None else "",
            owned=[resources_pb2.OwnedRef(kind=k, name=n) for k, n in entry.owned],
            notes=list(entry.notes),
            problems=[
                resources_pb2.ImportProblem(field=p.field, reason=p.reason, message=p.message)
                for p in entry.problems
            ],
        )
    )


def resources_to_pb(resources: list[Resource]) -> control_pb2.ListResponse:
    return control_pb2.ListResponse(resources=[resource_to_pb(r) for r in resources])


def download_from_progress(msg: agent_pb2.FetchProgress) -> state_pb2.DownloadStatus:
    """A storage progress event as the status message's download entry."""
    return state_pb2.DownloadStatus(
        version=msg.version,
        phase=msg.phase,
        bytes_done=msg.bytes_done,
        bytes_total=msg.bytes_total,
        bytes_per_second=msg.bytes_per_second,
        uri=msg.uri,
    )


def follow_event(
    item: state_pb2.ResourceStatus | state_pb2.DownloadStatus | None,
) -> control_pb2.FollowModelEvent:
    """One ``ControlHandler.follow_model`` step on the wire (None: the model was deleted)."""
    if item is None:
        return control_pb2.FollowModelEvent(deleted=True)
    if isinstance(item, state_pb2.DownloadStatus):
        return control_pb2.FollowModelEvent(download=item)
    return control_pb2.FollowModelEvent(status=item)
