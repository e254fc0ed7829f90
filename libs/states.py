"""Seldon Core v2 state names and how a model's state follows from its replicas' states.

Design: pure functions over the protobuf ``state_pb2.ReplicaState`` numbers (ints), so the
scheduler (which owns the replica state machine) and the status service (which reports it) use
one definition. The rules are those of Seldon v2's model-version status:

- latest version: any LoadFailed/LoadedUnavailable -> ModelFailed; replicas == 0 and
  minReplicas == 0 and none available -> ModelScaledDown; available == replicas, or
  (minReplicas > 0 and available >= minReplicas), or (available > 0 and an earlier version is
  available) -> ModelAvailable; otherwise ModelProgressing. A version the scheduler could not
  place at all is ScheduleFailed.
- deleted or superseded version: any UnloadFailed -> ModelTerminateFailed; any replica still
  loaded or unloading -> ModelTerminating; otherwise ModelTerminated.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from modelplane.proto import state_pb2

# ---- replica states ------------------------------------------------------------------------
REPLICA_UNKNOWN: Final = state_pb2.REPLICA_STATE_UNKNOWN
LOAD_REQUESTED: Final = state_pb2.LOAD_REQUESTED
LOADING: Final = state_pb2.LOADING
LOADED: Final = state_pb2.LOADED
LOAD_FAILED: Final = state_pb2.LOAD_FAILED
UNLOAD_ENVOY_REQUESTED: Final = state_pb2.UNLOAD_ENVOY_REQUESTED
UNLOAD_REQUESTED: Final = state_pb2.UNLOAD_REQUESTED
UNLOADING: Final = state_pb2.UNLOADING
UNLOADED: Final = state_pb2.UNLOADED
UNLOAD_FAILED: Final = state_pb2.UNLOAD_FAILED
AVAILABLE: Final = state_pb2.AVAILABLE
LOADED_UNAVAILABLE: Final = state_pb2.LOADED_UNAVAILABLE
DRAINING: Final = state_pb2.DRAINING

REPLICA_STATE_NAMES: Final[dict[int, str]] = {
    REPLICA_UNKNOWN: "Unknown",
    LOAD_REQUESTED: "LoadRequested",
    LOADING: "Loading",
    LOADED: "Loaded",
    LOAD_FAILED: "LoadFailed",
    UNLOAD_ENVOY_REQUESTED: "UnloadEnvoyRequested",
    UNLOAD_REQUESTED: "UnloadRequested",
    UNLOADING: "Unloading",
    UNLOADED: "Unloaded",
    UNLOAD_FAILED: "UnloadFailed",
    AVAILABLE: "Available",
    LOADED_UNAVAILABLE: "LoadedUnavailable",
    DRAINING: "Draining",
}

# A replica in one of these states may be sent inference traffic.
CAN_RECEIVE_TRAFFIC: Final = frozenset({LOADED, AVAILABLE, LOADED_UNAVAILABLE, DRAINING})
# A replica in one of these states holds nothing and will not by itself.
INACTIVE: Final = frozenset({UNLOADED, UNLOAD_FAILED, REPLICA_UNKNOWN, LOAD_FAILED})
# The replica is on its way to holding the model (it occupies memory already).
LOADING_STATES: Final = frozenset({LOAD_REQUESTED, LOADING, LOADED})
# The replica is on its way out.
UNLOADING_STATES: Final = frozenset({UNLOAD_ENVOY_REQUESTED, UNLOAD_REQUESTED, UNLOADING})

# ---- model states --------------------------------------------------------------------------
MODEL_UNKNOWN: Final = "ModelStateUnknown"
MODEL_PROGRESSING: Final = "ModelProgressing"
MODEL_AVAILABLE: Final = "ModelAvailable"
MODEL_FAILED: Final = "ModelFailed"
MODEL_TERMINATING: Final = "ModelTerminating"
MODEL_TERMINATED: Final = "ModelTerminated"
MODEL_TERMINATE_FAILED: Final = "ModelTerminateFailed"
SCHEDULE_FAILED: Final = "ScheduleFailed"
MODEL_SCALED_DOWN: Final = "ModelScaledDown"

MODEL_STATES: Final = (
    MODEL_UNKNOWN,
    MODEL_PROGRESSING,
    MODEL_AVAILABLE,
    MODEL_FAILED,
    MODEL_TERMINATING,
    MODEL_TERMINATED,
    MODEL_TERMINATE_FAILED,
    SCHEDULE_FAILED,
    MODEL_SCALED_DOWN,
)


def replica_state_name(state: int) -> str:
    """Seldon's name of a replica state ("Unknown" for a number this build does not know)."""
    return REPLICA_STATE_NAMES.get(state, "Unknown")


def count_available(states: Iterable[int]) -> int:
    """Replicas that are Available (loaded and routed)."""
    return sum(1 for s in states if s == AVAILABLE)


def count_draining(states: Iterable[int]) -> int:
    return sum(1 for s in states if s == DRAINING)


def derive_model_state(
    states: Iterable[int],
    *,
    replicas: int,
    min_replicas: int = 0,
    earlier_version_available: bool = False,
    schedule_failed: bool = False,
) -> str:
    """State of a model from its latest version's replica states (Seldon v2 rules, see module doc).

    ``schedule_failed`` is the scheduler's verdict that the version could not be (fully) placed;
    it is the state unless the rules above already make the model Available or Failed.
    """
    states = list(states)
    available = count_available(states)
    if any(s in (LOAD_FAILED, LOADED_UNAVAILABLE) for s in states):
        return MODEL_FAILED
    if replicas == 0 and min_replicas == 0 and available == 0:
        return MODEL_SCALED_DOWN
    if available == replicas and replicas > 0:
        return MODEL_AVAILABLE
    if min_replicas > 0 and available >= min_replicas:
        return MODEL_AVAILABLE
    if available > 0 and earlier_version_available:
        return MODEL_AVAILABLE
    if schedule_failed:
        return SCHEDULE_FAILED
    return MODEL_PROGRESSING


def derive_terminating_state(states: Iterable[int]) -> str:
    """State of a deleted or superseded version from its replica states."""
    states = list(states)
    if any(s == UNLOAD_FAILED for s in states):
        return MODEL_TERMINATE_FAILED
    if any(s not in INACTIVE for s in states):
        return MODEL_TERMINATING
    return MODEL_TERMINATED
