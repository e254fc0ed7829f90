"""Protobuf <-> scheduler types (KV values, agent commands and reports). To/from pairs only."""

from __future__ import annotations

from modelplane.libs.proto import agent_pb2, state_pb2
from modelplane.libs.resources.convert import model_spec_from_pb, model_spec_to_pb
from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaRecord
from modelplane.services.scheduler.records import (
    AgentReport,
    Assignment,
    CommandResult,
    ModelRecord,
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
