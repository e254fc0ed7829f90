"""Protobuf <-> status types. To/from pairs only."""

from __future__ import annotations

from modelplane.proto import agent_pb2, resources_pb2, state_pb2
from modelplane.services.status.types import (
    AssignmentView,
    AutoscalingView,
    DownloadView,
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
    return ModelView(
        msg.meta.name,
        msg.meta.generation,
        msg.spec.replicas,
        msg.spec.min_replicas,
        autoscaled=msg.spec.HasField("autoscaling"),
    )


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
        generation=msg.generation,
    )


def download_from_pb(msg: agent_pb2.FetchProgress) -> tuple[str, DownloadView]:
    """The model a storage progress event is about, and the download it reports."""
    return msg.model, DownloadView(
        version=msg.version,
        phase=msg.phase,
        bytes_done=msg.bytes_done,
        bytes_total=msg.bytes_total,
        bytes_per_second=msg.bytes_per_second,
        uri=msg.uri,
    )


def _download_to_pb(d: DownloadView) -> state_pb2.DownloadStatus:
    return state_pb2.DownloadStatus(
        version=d.version,
        phase=d.phase,
        bytes_done=d.bytes_done,
        bytes_total=d.bytes_total,
        bytes_per_second=d.bytes_per_second,
        uri=d.uri,
        reason=d.reason,
    )


def _download_from_pb(d: state_pb2.DownloadStatus) -> DownloadView:
    return DownloadView(
        version=d.version,
        phase=d.phase,
        bytes_done=d.bytes_done,
        bytes_total=d.bytes_total,
        bytes_per_second=d.bytes_per_second,
        uri=d.uri,
        reason=d.reason,
    )


def autoscaling_from_pb(msg: state_pb2.ModelScaling) -> AutoscalingView:
    return AutoscalingView(
        model=msg.model,
        current_replicas=msg.current_replicas,
        desired_replicas=msg.desired_replicas,
        reason=msg.reason,
        at=msg.at,
        average=msg.average,
        down_count=msg.down_count,
    )


def autoscaling_to_pb(a: AutoscalingView) -> state_pb2.ModelScaling:
    return state_pb2.ModelScaling(
        model=a.model,
        average=a.average,
        down_count=a.down_count,
        current_replicas=a.current_replicas,
        desired_replicas=a.desired_replicas,
        reason=a.reason,
        at=a.at,
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
        downloads=[_download_to_pb(d) for d in status.downloads],
        observed_generation=status.observed_generation,
        autoscaling=autoscaling_to_pb(status.autoscaling) if status.autoscaling is not None else None,
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
        downloads=tuple(_download_from_pb(d) for d in msg.downloads),
        observed_generation=msg.observed_generation,
        autoscaling=autoscaling_from_pb(msg.autoscaling) if msg.HasField("autoscaling") else None,
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
