"""Status derivation rules for models and servers (pure)."""

from __future__ import annotations

from dataclasses import replace

from modelplane.libs import states
from modelplane.services.status.derive import model_status, server_status
from modelplane.services.status.types import (
    AssignmentView,
    AutoscalingView,
    ModelView,
    PlacementView,
    ReplicaView,
    ServerView,
    VersionView,
)

IRIS = ModelView("iris", generation=3, replicas=1, min_replicas=0)


def placed(*versions: VersionView) -> PlacementView:
    return PlacementView("iris", versions)


def test_no_placement_is_waiting_for_scheduler() -> None:
    """A model the scheduler has not handled yet is Progressing, waiting for the scheduler."""
    status = model_status("iris", IRIS, None, None, "t1")
    assert status is not None
    assert (status.state, status.reason, status.last_change) == (
        states.MODEL_PROGRESSING,
        "waiting for the scheduler",
        "t1",
    )


def test_available_model_counts_and_replicas() -> None:
    """An Available replica makes the model Available with counts, version and per-replica states."""
    p = placed(VersionView(2, (AssignmentView("mlserver", 0, states.AVAILABLE, "", "t0"),)))
    status = model_status("iris", IRIS, p, None, "t1")
    assert status is not None
    assert status.state == states.MODEL_AVAILABLE
    assert (status.available_replicas, status.total_replicas, status.unavailable_replicas) == (1, 1, 0)
    assert (status.version, status.generation) == (2, 3)
    assert [(r.index, r.state) for r in status.replicas] == [(0, "Available")]


def test_last_change_moves_only_with_state() -> None:
    """last_change keeps its time while the state stays the same."""
    p = placed(VersionView(1, (AssignmentView("mlserver", 0, states.LOADING),)))
    first = model_status("iris", IRIS, p, None, "t1")
    again = model_status("iris", IRIS, p, first, "t2")
    assert again is not None
    assert again.last_change == "t1"
    done = model_status(
        "iris", IRIS, placed(VersionView(1, (AssignmentView("mlserver", 0, states.AVAILABLE),))), again, "t3"
    )
    assert done is not None
    assert done.last_change == "t3"


def test_schedule_failed_carries_reason() -> None:
    """A version the scheduler could not place is ScheduleFailed with its reason."""
    p = placed(
        VersionView(1, (), reason="server mlserver: missing capability tensorflow", schedule_failed=True)
    )
    status = model_status("iris", IRIS, p, None, "t1")
    assert status is not None
    assert status.state == states.SCHEDULE_FAILED
    assert "tensorflow" in status.reason


def test_deleted_model_terminating_then_gone() -> None:
    """A deleted model is Terminating while replicas remain; without a placement its status goes."""
    p = placed(VersionView(1, (AssignmentView("mlserver", 0, states.UNLOAD_REQUESTED),)))
    status = model_status("iris", None, p, None, "t1")
    assert status is not None
    assert status.state == states.MODEL_TERMINATING
    assert model_status("iris", None, None, status, "t2") is None


def test_server_ready_and_not_ready() -> None:
    """A server is Ready once registered replicas reach spec.replicas; otherwise it says how many."""
    server = ServerView("mlserver", 1, replicas=2)
    one = [ReplicaView("mlserver", 0)]
    status = server_status(server, one, None, "t1")
    assert status is not None
    assert (status.state, status.reason) == ("ServerNotReady", "1 of 2 replicas registered")
    both = server_status(server, [*one, ReplicaView("mlserver", 1)], status, "t2")
    assert both is not None
    assert (both.state, both.available_replicas, both.total_replicas) == ("ServerReady", 2, 2)


def test_unavailable_replica_reason_shows() -> None:
    """A replica's unavailable_reason becomes the server's reason and the replica is Unavailable."""
    server = ServerView("triton", 1, replicas=1)
    status = server_status(server, [ReplicaView("triton", 0, "tritonserver not found")], None, "t1")
    assert status is not None
    assert (status.state, status.reason) == ("ServerNotReady", "tritonserver not found")
    assert status.replicas[0].state == "Unavailable"


SCALING = AutoscalingView("iris", 2, 4, "avg concurrency 7.5 / target 2 -> 4", "2026-11-24T10:01:02Z", 7.5)
AUTOSCALED = ModelView("iris", generation=3, replicas=2, min_replicas=1, autoscaled=True)


def test_autoscaled_model_carries_the_decision() -> None:
    """An autoscaled model's status holds the autoscaler's record, placed or not; without one, none."""
    p = placed(VersionView(1, (AssignmentView("mlserver", 0, states.AVAILABLE),)))
    for placement in (p, None):
        status = model_status("iris", AUTOSCALED, placement, None, "t1", autoscaling=SCALING)
        assert status is not None
        assert status.autoscaling == SCALING
    status = model_status("iris", AUTOSCALED, p, None, "t1")
    assert status is not None
    assert status.autoscaling is None


def test_record_of_a_model_without_autoscaling_is_not_shown() -> None:
    """A record left over after autoscaling left the spec (or of a deleted model) is not shown."""
    p = placed(VersionView(1, (AssignmentView("mlserver", 0, states.AVAILABLE),)))
    status = model_status("iris", IRIS, p, None, "t1", autoscaling=SCALING)
    assert status is not None
    assert status.autoscaling is None
    gone = model_status("iris", None, p, None, "t1", autoscaling=SCALING)
    assert gone is not None
    assert gone.autoscaling is None


def test_new_decision_keeps_last_change() -> None:
    """A new autoscaling decision alone does not move last_change (it is not a state change)."""
    p = placed(VersionView(1, (AssignmentView("mlserver", 0, states.AVAILABLE),)))
    first = model_status("iris", AUTOSCALED, p, None, "t1", autoscaling=SCALING)
    later = replace(SCALING, desired_replicas=2, reason="avg concurrency 3 / target 2 -> 2", at="t2")
    again = model_status("iris", AUTOSCALED, p, first, "t2", autoscaling=later)
    assert again is not None
    assert (again.autoscaling, again.last_change) == (later, "t1")
