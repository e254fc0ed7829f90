"""Agent protobuf messages <-> the agent's own types."""

from __future__ import annotations

from modelplane.libs.resources import convert
from modelplane.proto import agent_pb2
from modelplane.services.placement.types import (
    Decision,
    LoadRequest,
    Outcome,
    ReplicaId,
    Report,
    UnloadRequest,
)

_OUTCOMES = {
    Outcome.LOADING: agent_pb2.OUTCOME_LOADING,
    Outcome.LOADED: agent_pb2.OUTCOME_LOADED,
    Outcome.LOAD_FAILED: agent_pb2.OUTCOME_LOAD_FAILED,
    Outcome.UNLOADED: agent_pb2.OUTCOME_UNLOADED,
    Outcome.UNLOAD_FAILED: agent_pb2.OUTCOME_UNLOAD_FAILED,
}


def load_from_pb(msg: agent_pb2.LoadModelCommand) -> LoadRequest:
    return LoadRequest(model=msg.model, version=msg.version, spec=convert.model_spec_from_pb(msg.spec))


def load_to_pb(request: LoadRequest) -> agent_pb2.LoadModelCommand:
    return agent_pb2.LoadModelCommand(
        model=request.model, version=request.version, spec=convert.model_spec_to_pb(request.spec)
    )


def unload_from_pb(msg: agent_pb2.UnloadModelCommand) -> UnloadRequest:
    return UnloadRequest(model=msg.model, version=msg.version)


def unload_to_pb(request: UnloadRequest) -> agent_pb2.UnloadModelCommand:
    return agent_pb2.UnloadModelCommand(model=request.model, version=request.version)


def decision_to_pb(decision: Decision) -> agent_pb2.CommandReply:
    return agent_pb2.CommandReply(accepted=decision.accepted, reason=decision.reason)


def report_to_pb(replica: ReplicaId, report: Report) -> agent_pb2.ModelReplicaReport:
    return agent_pb2.ModelReplicaReport(
        server=replica.server,
        index=replica.index,
        incarnation=replica.incarnation,
        model=report.model,
        version=report.version,
        outcome=_OUTCOMES[report.outcome],
        message=report.message,
    )


def heartbeat_to_pb(replica: ReplicaId) -> agent_pb2.Heartbeat:
    return agent_pb2.Heartbeat(server=replica.server, index=replica.index, incarnation=replica.incarnation)
