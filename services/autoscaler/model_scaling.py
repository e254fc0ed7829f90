"""How many replicas one model wants, tick by tick (KubeAI's model autoscaler, re-implemented).

Design: pure and clock-free: the caller brings each tick's metric (in-flight requests, held
ones included, summed over every gateway and dataflow worker; or requests per second for
KServe's ``scaleMetric: rps``) and the model's current replicas, and gets a ``Decision``.

- The metric goes into a simple moving average over ``window_seconds / interval_seconds``
  samples; desired = ceil(average / target), clamped to [min, max] (max 0 = unbounded).
- An increase applies at once. A decrease applies only after ceil(scale_down_delay / interval)
  consecutive ticks wanting one; any tick not wanting one resets the count.
- ``state()`` is what to persist (the average and the count); ``ModelScaler(policy, state)``
  restores it by filling the window with the saved average, so a restart neither forgets the
  load nor starts from an empty (zero) window that would scale everything down.
- A new model's window starts full of zeros, as KubeAI's does: scale-up follows the average,
  which climbs over the window; shorten ``window_seconds`` for faster reactions.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    # Metric per replica the model is sized for (KubeAI targetRequests; KServe scaleTarget).
    target: float
    min_replicas: int = 0
    # 0 = unbounded
    max_replicas: int = 0
    scale_down_delay_seconds: float = 30.0
    interval_seconds: float = 10.0
    window_seconds: float = 600.0
    # Autoscaling off: replicas are left as they are.
    disabled: bool = False

    @property
    def samples(self) -> int:
        return max(1, math.ceil(self.window_seconds / self.interval_seconds))

    @property
    def down_ticks(self) -> int:
        """Consecutive ticks wanting fewer replicas before a decrease applies."""
        return max(1, math.ceil(self.scale_down_delay_seconds / self.interval_seconds))

    def clamp(self, replicas: int) -> int:
        replicas = max(replicas, self.min_replicas)
        return min(replicas, self.max_replicas) if self.max_replicas > 0 else replicas


@dataclass(frozen=True, slots=True)
class ScalerState:
    """What survives a restart."""

    average: float = 0.0
    down_count: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    current: int
    desired: int
    average: float
    # In words, for `model status` and events: "avg in-flight 7.5 / target 2 -> 4".
    reason: str

    @property
    def changes(self) -> bool:
        return self.desired != self.current


class ModelScaler:
    def __init__(
        self, policy: ScalingPolicy, state: ScalerState | None = None, metric: str = "in-flight"
    ) -> None:
        self.policy = policy
        # What the metric is, for the reason text ("in-flight" or "rps").
        self._metric = metric
        restored = state or ScalerState()
        self._window: deque[float] = deque([restored.average] * policy.samples, maxlen=policy.samples)
        self._down_count = restored.down_count

    @property
    def average(self) -> float:
        # fsum: no drift however long the model lives (a window is at most a few hundred samples).
        return math.fsum(self._window) / len(self._window)

    def state(self) -> ScalerState:
        return ScalerState(average=self.average, down_count=self._down_count)

    def retune(self, policy: ScalingPolicy) -> None:
        """A changed Model: keep the load seen so far, resized to the new window."""
        if policy.samples != self.policy.samples:
            average = self.average
            self._window = deque([average] * policy.samples, maxlen=policy.samples)
        self.policy = policy

    def woken(self) -> None:
        """A request is held for the model: a scale-down under way is called off."""
        self._down_count = 0

    def tick(self, metric: float, current: int) -> Decision:
        """One interval passed with ``metric`` (missing metrics: pass 0)."""
        policy = self.policy
        self._window.append(max(0.0, metric))
        average = self.average
        if policy.disabled:
            self._down_count = 0
            return Decision(current, current, average, "autoscaling disabled")
        wanted = policy.clamp(math.ceil(round(average / policy.target, 9)) if policy.target > 0 else current)
        described = f"avg {self._metric} {average:g} / target {policy.target:g} -> {wanted}"
        if wanted >= current:
            self._down_count = 0
            return Decision(current, wanted, average, described)
        self._down_count += 1
        if self._down_count < policy.down_ticks:
            return Decision(
                current,
                current,
                average,
                f"{described}: scale-down waits ({self._down_count}/{policy.down_ticks} ticks)",
            )
        self._down_count = 0
        return Decision(current, wanted, average, described)
