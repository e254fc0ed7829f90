"""Protobuf <-> status types. To/from pairs only."""

from __future__ import annotations

from modelplane.libs.proto import resources_pb2, state_pb2
from modelplane.services.status.types import (
    AssignmentView,
    ModelView,
    PlacementView,
    ReplicaStatus,
    ReplicaView,
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
        replicas=[
            state_pb2.ReplicaStatus(
                server=r.server, index=r.index, state=r.state, reason=r.reason, updated_at=r.updated_at
            )
            for r in status.replicas
        ],
    )


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
        replicas=tuple(
            ReplicaStatus(r.server, r.index, r.state, r.reason, r.updated_at) for r in msg.replicas
        ),
    )
