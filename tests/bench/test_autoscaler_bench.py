"""The autoscaler benchmark's pure parts: figures, milestones read off KV values, the timeline,
and its command line (no stack is started here)."""

from __future__ import annotations

import pytest

from bench.autoscaler import milestones as m
from bench.autoscaler.figures import (
    ColdSplit,
    Summary,
    control_plane_met,
    median_seen,
    ms,
    secs,
    since_previous,
    split_cold_starts,
)
from bench.autoscaler.run import main
from bench.autoscaler.timeline import Observation, Timeline
from modelplane.proto import events_pb2, resources_pb2, state_pb2


def test_summary_gives_min_median_max() -> None:
    """A summary holds the count, min, median and max of the values."""
    assert Summary.of([0.3, 0.1, 0.2, 0.9]) == Summary(4, 0.1, 0.25, 0.9)


def test_summary_of_nothing_is_an_error() -> None:
    """Summarizing no values raises instead of printing a made-up figure."""
    with pytest.raises(ValueError, match="no values"):
        Summary.of([])


def test_control_plane_time_is_latency_minus_the_mlserver_baseline() -> None:
    """Each cycle's control-plane time is its cold-start latency minus its own baseline, and its
    share is that over the latency."""
    splits = split_cold_starts([0.5, 0.25], [0.4, 0.2])
    assert [s.control_plane for s in splits] == pytest.approx([0.1, 0.05])
    assert [s.share for s in splits] == pytest.approx([0.2, 0.2])


def test_split_pairs_cycles_only_when_counts_match() -> None:
    """Latencies and baselines of different counts cannot be paired."""
    with pytest.raises(ValueError, match="2 cold starts but 1 baselines"):
        split_cold_starts([0.5, 0.25], [0.4])


def test_share_of_a_zero_latency_is_zero() -> None:
    """A zero latency gives a zero share rather than a division error."""
    assert ColdSplit(0.0, 0.0).share == 0.0


def test_target_is_the_median_control_plane_under_200_ms() -> None:
    """The target holds when the median control-plane time is under 200 ms, whatever one outlier does."""
    assert control_plane_met([ColdSplit(1.0, 0.9), ColdSplit(1.0, 0.85), ColdSplit(2.0, 0.1)])
    assert not control_plane_met([ColdSplit(1.0, 0.7), ColdSplit(1.0, 0.9), ColdSplit(1.0, 0.75)])
    assert not control_plane_met([ColdSplit(0.45, 0.2)])


def test_steps_count_from_the_last_observed_milestone() -> None:
    """A step is the time since the previous observed milestone; unobserved ones have none."""
    assert since_previous([1.0, None, 3.5, 3.25]) == pytest.approx([1.0, None, 2.5, -0.25])


def test_median_seen_ignores_unobserved_values() -> None:
    """The median is taken over observed values only, None when there are none."""
    assert median_seen([None, 0.3, 0.1]) == pytest.approx(0.2)
    assert median_seen([None, None]) is None


def test_durations_print_in_ms_and_seconds() -> None:
    """Durations print right-aligned in ms or s, a dash when not observed, no negative zero."""
    assert ms(0.0234, 8) == "   23 ms"
    assert ms(None, 3) == "  -"
    assert ms(-0.0001) == "0 ms"
    assert secs(12.3449) == "12.34 s"
    assert secs(-0.001) == "0.00 s"


def test_timeline_finds_the_first_matching_observation_after_a_moment() -> None:
    """first() skips other keys, earlier observations and values failing the check."""
    timeline = Timeline()
    for at, key, value in ((1.0, "a", 3), (2.0, "b", 3), (3.0, "a", 1), (4.0, "a", 3), (5.0, "a", None)):
        timeline.add(Observation(at, "bucket", key, value))
    found = timeline.first("bucket", "a", lambda v: v is not None and v >= 3, after=1.5)
    assert found is not None
    assert found.at == 4.0
    assert timeline.first("other", "a", lambda v: True, after=0.0) is None
    assert timeline.latest("bucket", "a") is None  # deleted last
    assert timeline.latest("bucket", "b") == 3
    assert [o.at for o in timeline.between("bucket", "a", 2.0, 4.0)] == [3.0, 4.0]


def _placement(*versions: tuple[int, list[state_pb2.ReplicaState.ValueType]]) -> state_pb2.ModelPlacement:
    return state_pb2.ModelPlacement(
        model="m",
        versions=[
            state_pb2.ModelVersionPlacement(
                version=version,
                replicas=[
                    state_pb2.ReplicaAssignment(server="s", index=i, state=state)
                    for i, state in enumerate(states)
                ],
            )
            for version, states in versions
        ],
    )


def test_placement_milestones_count_the_latest_version() -> None:
    """Assigned, loading and loaded count the latest version's replicas by state; serving names them."""
    placement = _placement(
        (1, [state_pb2.AVAILABLE, state_pb2.AVAILABLE]),
        (2, [state_pb2.LOAD_REQUESTED, state_pb2.LOADING, state_pb2.LOADED, state_pb2.AVAILABLE]),
    )
    assert m.assigned_replicas(placement) == 4
    assert m.loading_replicas(placement) == 3
    assert m.loaded_replicas(placement) == 2
    assert m.serving_replicas(placement) == ["s.2", "s.3"]
    assert m.assigned_replicas(None) == m.loaded_replicas(None) == 0


def test_resident_replicas_counts_every_version_until_unloaded() -> None:
    """A model is at zero only when no version's replica may still be held by MLServer."""
    assert m.resident_replicas(_placement((1, [state_pb2.UNLOADED]), (2, [state_pb2.UNLOADING]))) == 1
    assert m.resident_replicas(_placement((1, [state_pb2.UNLOADED]))) == 0
    assert m.resident_replicas(None) == 0


def test_value_milestones_read_absent_keys_as_zero() -> None:
    """Spec, decision, route, status and load milestones read their values, zero when absent."""
    model = resources_pb2.Model(spec=resources_pb2.ModelSpec(replicas=2))
    route = state_pb2.ModelRoute(
        versions=[state_pb2.RouteVersion(endpoints=[state_pb2.RouteEndpoint(), state_pb2.RouteEndpoint()])]
    )
    assert m.spec_replicas(model) == 2
    assert m.spec_replicas(None) == 0
    assert m.desired_replicas(state_pb2.ModelScaling(desired_replicas=3)) == 3
    assert m.desired_replicas(None) == 0
    assert m.routed_endpoints(route) == 2
    assert m.routed_endpoints(state_pb2.ModelRoute()) == 0
    assert m.available_replicas(state_pb2.ResourceStatus(available_replicas=1)) == 1
    assert m.in_flight(events_pb2.ModelLoad(in_flight=2, held=1)) == 3
    assert m.in_flight(None) == 0


def test_command_line_rejects_negative_cycles() -> None:
    """A negative cycle count is refused before anything starts."""
    with pytest.raises(SystemExit) as exited:
        main(["--cycles", "-1"])
    assert exited.value.code == 2


def test_command_line_rejects_a_non_positive_window() -> None:
    """The autoscaler knobs must be positive."""
    with pytest.raises(SystemExit) as exited:
        main(["--window", "0"])
    assert exited.value.code == 2
