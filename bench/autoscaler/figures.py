"""The arithmetic of the benchmark, pure so it is tested on its own: summaries of repeated
measurements, the split of a cold-start latency into control-plane and MLServer time, the
target check, and how durations are printed.

A cold start is measured through the stack (request held at zero replicas until a replica is
ready, then answered) and, in the same cycle, against a bare MLServer process (load the same
model files, answer the first request). The bare figure is what MLServer needs anyway; the rest
of the cold-start latency is what the control plane adds (wake, decision, scheduling, the
agent's work, routing, releasing the held request).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Issue 7's target: the control plane adds under 200 ms to a cold start.
TARGET_CONTROL_PLANE_SECONDS = 0.200


@dataclass(frozen=True, slots=True)
class Summary:
    """Min / median / max of repeated measurements (seconds)."""

    count: int
    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("no values to summarize")
        return cls(len(values), min(values), statistics.median(values), max(values))


@dataclass(frozen=True, slots=True)
class ColdSplit:
    """One cycle: the cold-start latency through the stack and MLServer's own time for the same
    model measured on a bare MLServer in the same cycle (seconds)."""

    latency: float
    mlserver: float

    @property
    def control_plane(self) -> float:
        # Negative when the bare MLServer happened to be slower than the whole path (noise).
        return self.latency - self.mlserver

    @property
    def share(self) -> float:
        """The control plane's share of the cold-start latency."""
        return self.control_plane / self.latency if self.latency > 0 else 0.0


def split_cold_starts(latencies: Sequence[float], baselines: Sequence[float]) -> list[ColdSplit]:
    """Pair each cycle's cold-start latency with the same cycle's MLServer baseline."""
    if len(latencies) != len(baselines):
        raise ValueError(f"{len(latencies)} cold starts but {len(baselines)} baselines")
    return [ColdSplit(latency, mlserver) for latency, mlserver in zip(latencies, baselines, strict=True)]


def median_seen(values: Sequence[float | None]) -> float | None:
    """The median of the values observed (None when none was)."""
    seen = [v for v in values if v is not None]
    return statistics.median(seen) if seen else None


def control_plane_met(splits: Sequence[ColdSplit]) -> bool:
    """The target holds when the median control-plane time is under 200 ms."""
    return Summary.of([s.control_plane for s in splits]).median < TARGET_CONTROL_PLANE_SECONDS


def since_previous(offsets: Sequence[float | None]) -> list[float | None]:
    """Each milestone's time since the previous observed one (the first: since the start).

    A milestone not observed (None) has no step; the next observed one counts from the last
    observed milestone before it. A step is negative when a milestone arrived before the previous
    one (they are changes of different KV buckets, each seen when it arrives).
    """
    out: list[float | None] = []
    previous = 0.0
    for offset in offsets:
        if offset is None:
            out.append(None)
            continue
        out.append(offset - previous)
        previous = offset
    return out


def ms(seconds: float | None, width: int = 0) -> str:
    """``1234 ms`` (right-aligned in ``width``), ``-`` when not observed."""
    # + 0.0 turns a -0 left by rounding into 0
    text = "-" if seconds is None else f"{round(seconds * 1000) + 0.0:.0f} ms"
    return text.rjust(width)


def secs(seconds: float | None, width: int = 0) -> str:
    """``12.34 s`` (right-aligned in ``width``), ``-`` when not observed."""
    text = "-" if seconds is None else f"{round(seconds, 2) + 0.0:.2f} s"
    return text.rjust(width)
