"""The model autoscaling algorithm (KubeAI semantics), tick by tick: no clock, no sleeps."""

from __future__ import annotations

import pytest

from modelplane.services.autoscaler.model_scaling import ModelScaler, ScalerState, ScalingPolicy

# Short windows keep the arithmetic readable: 4 samples, scale-down after 3 ticks.
POLICY = ScalingPolicy(
    target=2,
    min_replicas=1,
    max_replicas=5,
    scale_down_delay_seconds=30,
    interval_seconds=10,
    window_seconds=40,
)


def run(scaler: ModelScaler, metrics: list[float], current: int) -> list[int]:
    """Feed one metric per tick, applying each decision; the replicas after each tick."""
    seen = []
    for metric in metrics:
        current = scaler.tick(metric, current).desired
        seen.append(current)
    return seen


def test_ramp_up_follows_the_moving_average() -> None:
    """Load of 8 in flight with target 2: the average climbs over the window, replicas with it."""
    scaler = ModelScaler(POLICY)
    assert run(scaler, [8, 8, 8, 8], current=1) == [1, 2, 3, 4]
    decision = scaler.tick(8, 4)
    assert decision.reason == "avg in-flight 8 / target 2 -> 4"
    assert not decision.changes


def test_scale_down_waits_for_consecutive_ticks() -> None:
    """A decrease applies only after ceil(delay / interval) ticks in a row want it; a tick that
    does not want it resets the count."""
    scaler = ModelScaler(POLICY, ScalerState(average=8))
    # Load stops: the average falls 8 -> 6 -> 4 -> 2; the first wanting-less ticks wait.
    first = scaler.tick(0, 4)
    assert (first.desired, first.reason) == (
        4,
        "avg in-flight 6 / target 2 -> 3: scale-down waits (1/3 ticks)",
    )
    assert scaler.tick(0, 4).desired == 4
    # A burst brings the average back to 8 (4 replicas wanted): the count starts again.
    assert scaler.tick(24, 4).reason == "avg in-flight 8 / target 2 -> 4"
    # Three idle ticks (average 6, 6, 6: 3 replicas wanted) before the decrease applies.
    assert [scaler.tick(0, 4).desired for _ in range(3)] == [4, 4, 3]


def test_clamped_to_min_and_max() -> None:
    """Desired replicas stay within [minReplicas, maxReplicas]; max 0 means unbounded."""
    scaler = ModelScaler(POLICY, ScalerState(average=100))
    assert scaler.tick(100, 1).desired == 5
    idle = ModelScaler(POLICY)
    assert [idle.tick(0, 1).desired for _ in range(5)] == [1, 1, 1, 1, 1]
    unbounded = ModelScaler(ScalingPolicy(target=1, window_seconds=10, interval_seconds=10), ScalerState(0))
    assert unbounded.tick(37, 1).desired == 37


def test_scales_to_zero_with_min_zero_and_back_from_held_requests() -> None:
    """minReplicas 0: no load scales to zero after the delay; held requests bring one back."""
    policy = ScalingPolicy(
        target=2, min_replicas=0, scale_down_delay_seconds=20, interval_seconds=10, window_seconds=10
    )
    scaler = ModelScaler(policy, ScalerState(average=1))
    assert [scaler.tick(0, 1).desired for _ in range(2)] == [1, 0]
    assert scaler.tick(1, 0).desired == 1  # one held request: ceil(1 / 2) = 1


def test_restart_with_persisted_average_does_not_scale_down() -> None:
    """A scaler restored from its saved state keeps sizing for the same load, where a fresh one
    (an empty window) would drift down."""
    before = ModelScaler(POLICY)
    run(before, [8, 8, 8, 8], current=1)
    saved = before.state()
    assert saved.average == 8
    restored = ModelScaler(POLICY, saved)
    assert [restored.tick(8, 4).desired for _ in range(4)] == [4, 4, 4, 4]
    fresh = ModelScaler(POLICY)
    assert fresh.tick(8, 4).reason.endswith("scale-down waits (1/3 ticks)")


def test_missing_metrics_count_as_zero() -> None:
    """Ticks without any sample (metric 0) lower the average like idle ticks do."""
    scaler = ModelScaler(POLICY, ScalerState(average=4))
    # Averages 3, 2, 1, 0: one replica wanted from the second tick, granted at the third wish.
    assert run(scaler, [0, 0, 0, 0], current=2) == [2, 2, 2, 1]


def test_disabled_leaves_replicas_alone() -> None:
    """autoscaling.disabled: whatever the load, the current replicas are kept."""
    scaler = ModelScaler(ScalingPolicy(target=1, disabled=True))
    decision = scaler.tick(100, 3)
    assert (decision.desired, decision.reason) == (3, "autoscaling disabled")


def test_retune_keeps_the_load_seen() -> None:
    """A changed policy (new window, new target) starts from the average already seen."""
    scaler = ModelScaler(POLICY, ScalerState(average=6))
    scaler.retune(ScalingPolicy(target=3, max_replicas=10, window_seconds=100, interval_seconds=10))
    assert scaler.average == pytest.approx(6)
    assert scaler.tick(6, 1).desired == 2


def test_rps_metric_in_the_reason() -> None:
    """KServe scaleMetric rps: the same rules, the reason names the metric."""
    scaler = ModelScaler(ScalingPolicy(target=10, window_seconds=10, interval_seconds=10), metric="rps")
    assert scaler.tick(35, 1).reason == "avg rps 35 / target 10 -> 4"
