"""Protobuf <-> our types at the gRPC edge (resources reuse ``libs.resources.convert``)."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.convert import resource_from_pb, resource_to_pb
from modelplane.libs.resources.types import Resource
from modelplane.proto import agent_pb2, control_pb2, state_pb2

__all__ = [
    "apply_response",
    "download_from_progress",
    "follow_event",
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


def apply_response(resource: Resource, outcome: str) -> control_pb2.ApplyResponse:
    return control_pb2.ApplyResponse(resource=resource_to_pb(resource), outcome=outcome)


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
