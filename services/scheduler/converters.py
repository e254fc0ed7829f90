"""Protobuf <-> scheduler types (KV values, agent commands and reports). To/from pairs only."""

from __future__ import annotations

from modelplane.libs.resources.convert import model_spec_from_pb, model_spec_to_pb
from modelplane.libs.resources.replica_cap import replica_cap
from modelplane.libs.resources.types import ModelSpec
from modelplane.proto import agent_pb2, events_pb2, resources_pb2, state_pb2
from modelplane.services.scheduler.cluster import ReplicaRecord, ServerRecord
from modelplane.services.scheduler.records import (
    AgentReport,
    Assignment,
    CommandResult,
    ModelRecord,
    ReplicaUsage,
    ScaleRequest,
    ServerLimits,
    ServerUsage,
    VersionRecord,
)

_OUTCOMES = {
    agent_pb2.OUTCOME_LOADING: "loading",
    agent_pb2.OUTCOME_LOADED: "loaded",
    agent_pb2.OUTCOME_LOAD_FAILED: "load_failed",
    agent_pb2.OUTCOME_UNLOADED: "unloaded",
    agent_pb2.OUTCOME_UNLOAD_FAILED: "unload_failed",
}


def record_to_pb(record: ModelRecord) -> state_pb2.ModelPlacement:
    return state_pb2.ModelPlacement(
        model=record.name,
        generation=record.generation,
        deleted=record.deleted,
        versions=[
            state_pb2.ModelVersionPlacement(
                version=v.version,
                spec=model_spec_to_pb(v.spec),
                server=v.server,
                reason=v.reason,
                schedule_failed=v.schedule_failed,
                replicas=[
                    state_pb2.ReplicaAssignment(
                        server=a.server,
                        index=a.index,
                        state=state_pb2.ReplicaState.ValueType(a.state),
                        reason=a.reason,
                        updated_at=a.updated_at,
                    )
                    for a in v.replicas
                ],
            )
            for v in record.versions
        ],
    )


def record_from_pb(msg: state_pb2.ModelPlacement) -> ModelRecord:
    return ModelRecord(
        name=msg.model,
        generation=msg.generation,
        deleted=msg.deleted,
        versions=[
            VersionRecord(
                version=v.version,
                spec=model_spec_from_pb(v.spec),
                server=v.server,
                reason=v.reason,
                schedule_failed=v.schedule_failed,
                replicas=[
                    Assignment(
                        server=a.server,
                        index=a.index,
                        state=a.state,
                        reason=a.reason,
                        updated_at=a.updated_at,
                    )
                    for a in v.replicas
                ],
            )
            for v in msg.versions
        ],
    )


def replica_from_pb(msg: state_pb2.ReplicaInfo) -> ReplicaRecord:
    return ReplicaRecord(
        server=msg.server,
        index=msg.index,
        incarnation=msg.incarnation,
        capabilities=tuple(msg.capabilities),
        memory_bytes=msg.memory_bytes,
        overcommit_percent=msg.overcommit_percent,
        http_endpoint=msg.http_endpoint,
        grpc_endpoint=msg.grpc_endpoint,
        loaded_models=frozenset(msg.loaded_models),
        draining=msg.draining,
        unavailable_reason=msg.unavailable_reason,
    )


def report_from_pb(msg: agent_pb2.ModelReplicaReport) -> AgentReport:
    return AgentReport(
        server=msg.server,
        index=msg.index,
        incarnation=msg.incarnation,
        model=msg.model,
        version=msg.version,
        outcome=_OUTCOMES.get(msg.outcome, "unknown"),
        message=msg.message,
    )


def load_command_to_pb(model: str, version: int, spec: ModelSpec) -> agent_pb2.LoadModelCommand:
    return agent_pb2.LoadModelCommand(model=model, version=version, spec=model_spec_to_pb(spec))


def unload_command_to_pb(model: str, version: int) -> agent_pb2.UnloadModelCommand:
    return agent_pb2.UnloadModelCommand(model=model, version=version)


def command_reply_from_pb(msg: agent_pb2.CommandReply) -> CommandResult:
    return CommandResult(accepted=msg.accepted, reason=msg.reason)


def server_from_pb(msg: resources_pb2.Server, max_server_replicas: int) -> tuple[ServerRecord, ServerLimits]:
    """The Server's record and limits; without maxReplicas it is bounded by ``max_server_replicas``
    (a Server written past the api with more replicas counts as that many: no more will run)."""
    spec = msg.spec
    cap = replica_cap(spec.max_replicas, max_server_replicas)
    return (
        ServerRecord(msg.meta.name, min(spec.replicas, cap), spec.server_config),
        ServerLimits(min_replicas=min(spec.min_replicas, cap), max_replicas=cap),
    )


def usage_to_pb(usage: ServerUsage) -> state_pb2.ServerState:
    return state_pb2.ServerState(
        server=usage.server,
        replicas=[
            state_pb2.ReplicaUsage(
                index=r.index,
                memory_bytes=r.memory_bytes,
                overcommit_percent=r.overcommit_percent,
                reserved_bytes=r.reserved_bytes,
                loaded_bytes=r.loaded_bytes,
                available_bytes=r.available_bytes,
                models=list(r.models),
                draining=r.draining,
            )
            for r in usage.replicas
        ],
    )


def usage_from_pb(msg: state_pb2.ServerState) -> ServerUsage:
    return ServerUsage(
        server=msg.server,
        replicas=tuple(
            ReplicaUsage(
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
        ),
    )


_DIRECTIONS = {"up": state_pb2.SCALE_UP, "down": state_pb2.SCALE_DOWN}
_DIRECTION_NAMES = {v: k for k, v in _DIRECTIONS.items()}


def scale_request_to_pb(request: ScaleRequest) -> state_pb2.ServerScaleRequest:
    return state_pb2.ServerScaleRequest(
        server=request.server,
        current_replicas=request.current_replicas,
        target_replicas=request.target_replicas,
        direction=_DIRECTIONS.get(request.direction, state_pb2.SCALE_DIRECTION_UNKNOWN),
        reason=request.reason,
        requested_at=request.requested_at,
    )


def scale_request_from_pb(msg: state_pb2.ServerScaleRequest) -> ScaleRequest:
    return ScaleRequest(
        server=msg.server,
        current_replicas=msg.current_replicas,
        target_replicas=msg.target_replicas,
        direction=_DIRECTION_NAMES.get(msg.direction, "unknown"),
        reason=msg.reason,
        requested_at=msg.requested_at,
    )


def scale_event_to_pb(
    event_id: str, server: str, event_type: str, time: str, request: ScaleRequest | None
) -> events_pb2.Event:
    """The thin event announcing a change of a server's pending scale request."""
    attributes = (
        {"current_replicas": str(request.current_replicas), "target_replicas": str(request.target_replicas)}
        if request is not None
        else {}
    )
    return events_pb2.Event(
        id=event_id,
        source="scheduler",
        type=event_type,
        schema_version=1,
        kind="Server",
        name=server,
        time=time,
        attributes=attributes,
    )
