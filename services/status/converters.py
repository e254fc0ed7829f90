"""Protobuf <-> status types. To/from pairs only."""

from __future__ import annotations

from modelplane.proto import resources_pb2, state_pb2
from modelplane.services.status.types import (
    AssignmentView,
    ModelView,
    PlacementView,
    ReplicaStatus,
    ReplicaUsageView,
    ReplicaView,
    ScaleRequestView,
    ServerView,
    Status,
    VersionView,
)


def model_from_pb(msg: resources_pb2.Model) -> ModelView:
    return ModelView(msg.meta.name, msg.meta.generation, msg.spec.replicas, msg.spec.min_replicas)


def server_from_pb(msg: resources_pb2.Server) -> ServerView:
    return ServerView(msg.meta.name, msg.meta.generation, msg.spec.replicas)


def replica_from_pb(msg: state_pb2.ReplicaInfo) -> ReplicaView:
    return ReplicaView(msg.server, msg.index, msg.unavailable_reason, msg.registered_at)


def placement_from_pb(msg: state_pb2.ModelPlacement) -> PlacementView:
    return PlacementView(
        model=msg.model,
        versions=tuple(
            VersionView(
                version=v.version,
                replicas=tuple(
                    AssignmentView(a.server, a.index, a.state, a.reason, a.updated_at) for a in v.replicas
                ),
                reason=v.reason,
                schedule_failed=v.schedule_failed,
            )
            for v in msg.versions
        ),
    )


def status_to_pb(status: Status) -> state_pb2.ResourceStatus:
    return state_pb2.ResourceStatus(
        kind=status.kind,
        name=status.name,
        state=status.state,
        reason=status.reason,
        available_replicas=status.available_replicas,
        total_replicas=status.total_replicas,
        unavailable_replicas=status.unavailable_replicas,
        version=status.version,
        generation=status.generation,
        last_change=status.last_change,
        replicas=[_replica_status_to_pb(r) for r in status.replicas],
        scale_request=status.scale_request,
    )


def _replica_status_to_pb(r: ReplicaStatus) -> state_pb2.ReplicaStatus:
    msg = state_pb2.ReplicaStatus(
        server=r.server, index=r.index, state=r.state, reason=r.reason, updated_at=r.updated_at
    )
    if r.usage is not None:
        u = r.usage
        msg.memory_bytes = u.memory_bytes
        msg.overcommit_percent = u.overcommit_percent
        msg.reserved_bytes = u.reserved_bytes
        msg.loaded_bytes = u.loaded_bytes
        msg.available_bytes = u.available_bytes
        msg.models.extend(u.models)
        msg.draining = u.draining
    return msg


def _replica_status_from_pb(kind: str, r: state_pb2.ReplicaStatus) -> ReplicaStatus:
    usage = None
    if kind == "Server":
        usage = ReplicaUsageView(
            index=r.index,
            memory_bytes=r.memory_bytes,
            overcommit_percent=r.overcommit_percent,
            reserved_bytes=r.reserved_bytes,
            loaded_bytes=r.loaded_bytes,
            available_bytes=r.available_bytes,
            models=tuple(r.models),
            draining=r.draining,
        )
    return ReplicaStatus(r.server, r.index, r.state, r.reason, r.updated_at, usage)


def status_from_pb(msg: state_pb2.ResourceStatus) -> Status:
    return Status(
        kind=msg.kind,
        name=msg.name,
        state=msg.state,
        reason=msg.reason,
        available_replicas=msg.available_replicas,
        total_replicas=msg.total_replicas,
        unavailable_replicas=msg.unavailable_replicas,
        version=msg.version,
        generation=msg.generation,
        last_change=msg.last_change,
        replicas=tuple(_replica_status_from_pb(msg.kind, r) for r in msg.replicas),
        scale_request=msg.scale_request,
    )


def usage_from_pb(msg: state_pb2.ServerState) -> dict[int, ReplicaUsageView]:
    return {
        r.index: ReplicaUsageView(
            index=r.index,
            memory_bytes=r.memory_bytes,
            overcommit_percent=r.overcommit_percent,
            reserved_bytes=r.reserved_bytes,
            loaded_bytes=r.loaded_bytes,
            available_bytes=r.available_bytes,
            models=tuple(r.models),
            draining=r.draining,
        )
        for r in msg.replicas
    }


_DIRECTIONS = {state_pb2.SCALE_UP: "up", state_pb2.SCALE_DOWN: "down"}


def scale_request_from_pb(msg: state_pb2.ServerScaleRequest) -> ScaleRequestView:
    return ScaleRequestView(
        server=msg.server,
        current_replicas=msg.current_replicas,
        target_replicas=msg.target_replicas,
        direction=_DIRECTIONS.get(msg.direction, "unknown"),
        reason=msg.reason,
        requested_at=msg.requested_at,
    )
