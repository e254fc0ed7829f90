"""The load of each model, summed over every process that forwards its requests.

Design: each gateway and dataflow worker publishes a ``ModelLoad`` sample per model about once a
second (libs/dataplane/load_signals.py), each for its own share. ``LoadBook`` keeps the latest
sample per (model, source) with the time it arrived, and answers a tick's metric:

- ``concurrency`` (KubeAI's metric, KServe's ``scaleMetric: concurrency``): requests being
  answered plus requests held waiting for a replica, so a model at zero replicas with callers
  waiting shows load and scales back up;
- ``rps`` (KServe's ``scaleMetric: rps``): requests answered per second over the sample's window.

A source whose last sample is older than ``stale_after`` seconds counts as zero (a gateway that
stopped reporting has no requests in flight; KubeAI's "missing metrics are zero"). Times are the
caller's clock, so tests drive it without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Metric = Literal["concurrency", "rps"]
METRICS: Final[tuple[Metric, ...]] = ("concurrency", "rps")


@dataclass(frozen=True, slots=True)
class LoadSample:
    in_flight: int
    held: int
    requests: int
    window_seconds: float

    @property
    def concurrency(self) -> float:
        return float(self.in_flight + self.held)

    @property
    def rps(self) -> float:
        return self.requests / self.window_seconds if self.window_seconds > 0 else 0.0


class LoadBook:
    def __init__(self, stale_after: float) -> None:
        self._stale_after = stale_after
        # model -> source -> (arrived at, sample)
        self._samples: dict[str, dict[str, tuple[float, LoadSample]]] = {}

    def record(self, model: str, source: str, sample: LoadSample, now: float) -> None:
        self._samples.setdefault(model, {})[source] = (now, sample)

    def metric(self, model: str, metric: Metric, now: float) -> float:
        """The model's load now, summed over fresh sources (0 when none reports)."""
        total = 0.0
        sources = self._samples.get(model, {})
        for source, (at, sample) in list(sources.items()):
            if now - at > self._stale_after:
                del sources[source]  # gone quiet: counts as zero from now on
                continue
            total += sample.concurrency if metric == "concurrency" else sample.rps
        return total

    def sources(self, model: str) -> int:
        return len(self._samples.get(model, {}))

    def forget(self, model: str) -> None:
        self._samples.pop(model, None)
