"""libs.states: Seldon v2 state names and model-state derivation."""

from __future__ import annotations

from modelplane.libs import states
from modelplane.proto import state_pb2


def test_every_replica_state_has_a_seldon_name() -> None:
    """Each ReplicaState enum value maps to its Seldon name; unknown numbers read as Unknown."""
    for value in state_pb2.ReplicaState.values():
        assert states.replica_state_name(value) in states.REPLICA_STATE_NAMES.values()
    assert states.replica_state_name(state_pb2.UNLOAD_ENVOY_REQUESTED) == "UnloadEnvoyRequested"
    assert states.replica_state_name(999) == "Unknown"


def test_all_replicas_available_is_available() -> None:
    """available == replicas makes the model Available."""
    assert states.derive_model_state([states.AVAILABLE] * 2, replicas=2) == states.MODEL_AVAILABLE


def test_partly_available_is_progressing() -> None:
    """Fewer available than desired (no min, no earlier version) is Progressing."""
    got = states.derive_model_state([states.AVAILABLE, states.LOADING], replicas=2)
    assert got == states.MODEL_PROGRESSING


def test_load_failed_replica_fails_the_model() -> None:
    """Any LoadFailed or LoadedUnavailable replica makes the model Failed."""
    assert (
        states.derive_model_state([states.AVAILABLE, states.LOAD_FAILED], replicas=2) == states.MODEL_FAILED
    )
    assert states.derive_model_state([states.LOADED_UNAVAILABLE], replicas=1) == states.MODEL_FAILED


def test_zero_replicas_is_scaled_down() -> None:
    """replicas == 0 and minReplicas == 0 with nothing available is ScaledDown."""
    assert states.derive_model_state([], replicas=0) == states.MODEL_SCALED_DOWN


def test_min_replicas_reached_is_available() -> None:
    """With minReplicas > 0, reaching it is enough for Available."""
    got = states.derive_model_state([states.AVAILABLE, states.LOAD_REQUESTED], replicas=3, min_replicas=1)
    assert got == states.MODEL_AVAILABLE


def test_earlier_available_version_makes_partial_rollout_available() -> None:
    """A new version with some available replicas is Available while an earlier one serves."""
    got = states.derive_model_state(
        [states.AVAILABLE, states.LOADING], replicas=2, earlier_version_available=True
    )
    assert got == states.MODEL_AVAILABLE


def test_schedule_failed_unless_available() -> None:
    """The scheduler's ScheduleFailed verdict shows unless the model is Available anyway."""
    assert states.derive_model_state([], replicas=1, schedule_failed=True) == states.SCHEDULE_FAILED
    got = states.derive_model_state([states.AVAILABLE], replicas=1, schedule_failed=True)
    assert got == states.MODEL_AVAILABLE


def test_terminating_rules() -> None:
    """Old/deleted versions: UnloadFailed -> TerminateFailed; still loaded/unloading -> Terminating."""
    assert states.derive_terminating_state([states.UNLOAD_FAILED]) == states.MODEL_TERMINATE_FAILED
    assert states.derive_terminating_state([states.UNLOAD_REQUESTED]) == states.MODEL_TERMINATING
    assert states.derive_terminating_state([states.AVAILABLE]) == states.MODEL_TERMINATING
    assert states.derive_terminating_state([states.UNLOADED]) == states.MODEL_TERMINATED
    assert states.derive_terminating_state([]) == states.MODEL_TERMINATED


def test_available_count() -> None:
    """Only Available replicas count as available."""
    assert states.count_available([states.AVAILABLE, states.LOADED, states.AVAILABLE]) == 2
