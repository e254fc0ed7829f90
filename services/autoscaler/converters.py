"""Protobuf records of the scheduler into the autoscaler's server-scaling types."""

from __future__ import annotations

from modelplane.proto import state_pb2
from modelplane.services.autoscaler.server_handler import model_of
from modelplane.services.autoscaler.server_scaling import ReplicaLoad, ScaleAsk


def ask_from_pb(msg: state_pb2.ServerScaleRequest) -> ScaleAsk | None:
    """The scheduler's pending request (None for a direction we do not know)."""
    if msg.direction == state_pb2.SCALE_UP:
        return ScaleAsk("up", msg.target_replicas, msg.reason)
    if msg.direction == state_pb2.SCALE_DOWN:
        return ScaleAsk("down", msg.target_replicas, msg.reason)
    return None


def replicas_from_pb(msg: state_pb2.ServerState) -> list[ReplicaLoad]:
    """A server's live replicas with their free memory and the models they hold."""
    return [
        ReplicaLoad(
            index=r.index,
            free_bytes=r.available_bytes - r.reserved_bytes,
            models=tuple(sorted({model_of(name) for name in r.models})),
            draining=r.draining,
        )
        for r in msg.replicas
    ]
