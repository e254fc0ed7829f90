"""Load signals per model: in flight, held, request rate and latency, for the autoscaler.

Why: the autoscaler scales a model on the load the gateway sees (KubeAI scales on in-flight
requests; KServe on concurrency or rate), and only the gateway sees every request. Each request's
latency goes into a small fixed-bucket histogram per model (one list increment); every interval
the window is published as a ``ModelLoad`` on ``modelplane.gateway.load.<model>`` and restarted.
In-flight and held counts are read from the handler at publish time, so nothing is counted twice.
A model is reported while it has traffic and once more when it falls idle (zeros), so the
autoscaler sees the drop without the gateway publishing for every idle model forever.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from nats.aio.client import Client as NATS

from modelplane.libs import subjects
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.dataplane.balancers.in_flight import InFlightView
from modelplane.proto import events_pb2

log = structlog.get_logger(__name__)

# Upper bounds (seconds) of the latency buckets: from a fast tabular model to a slow LLM call.
LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(slots=True)
class _Window:
    requests: int = 0
    # One count per bound, plus one for everything above the last bound.
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))


@dataclass(frozen=True, slots=True)
class ModelLoadSample:
    """One model's load over one window (what ``ModelLoad`` carries)."""

    model: str
    in_flight: int
    held: int
    replica_in_flight: dict[str, int]
    requests: int
    window_seconds: float
    latency_counts: tuple[int, ...]

    @property
    def idle(self) -> bool:
        return not (self.in_flight or self.held or self.requests)


def model_of_key(balance_key: str) -> str:
    """The model of a route key ``"<model>:<version>"``."""
    return balance_key.rsplit(":", 1)[0]


class LoadSignals:
    """Collects per-model latency windows and turns them, with live counts, into samples."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._started = clock()
        # Models reported non-idle last time: they get one idle report when their load stops.
        self._active: set[str] = set()

    def observe(self, model: str, seconds: float) -> None:
        """A request for ``model`` was answered after ``seconds``."""
        window = self._windows.get(model)
        if window is None:
            window = self._windows[model] = _Window()
        window.requests += 1
        window.latency_counts[bisect_left(LATENCY_BOUNDS, seconds)] += 1

    def take(self, in_flight: InFlightView, held: Callable[[], dict[str, int]]) -> list[ModelLoadSample]:
        """The samples of the window now ending (and start the next window)."""
        now = self._clock()
        length, self._started = max(now - self._started, 1e-9), now
        windows, self._windows = self._windows, {}
        in_flight_by_model: dict[str, int] = {}
        for key, count in in_flight.by_key().items():
            model = model_of_key(key)
            in_flight_by_model[model] = in_flight_by_model.get(model, 0) + count
        replicas: dict[str, dict[str, int]] = {}
        for (key, replica), count in in_flight.by_pair().items():
            per_model = replicas.setdefault(model_of_key(key), {})
            per_model[replica] = per_model.get(replica, 0) + count
        waiting = held()
        models = set(windows) | set(in_flight_by_model) | set(waiting) | self._active
        samples = []
        for model in sorted(models):
            window = windows.get(model, _Window())
            sample = ModelLoadSample(
                model=model,
                in_flight=in_flight_by_model.get(model, 0),
                held=waiting.get(model, 0),
                replica_in_flight=replicas.get(model, {}),
                requests=window.requests,
                window_seconds=length,
                latency_counts=tuple(window.latency_counts),
            )
            samples.append(sample)
        self._active = {s.model for s in samples if not s.idle}
        return samples


def sample_to_pb(sample: ModelLoadSample, gateway: str) -> events_pb2.ModelLoad:
    return events_pb2.ModelLoad(
        model=sample.model,
        gateway=gateway,
        in_flight=sample.in_flight,
        held=sample.held,
        replica_in_flight=sample.replica_in_flight,
        requests=sample.requests,
        window_seconds=sample.window_seconds,
        latency_bounds_seconds=LATENCY_BOUNDS,
        latency_counts=sample.latency_counts,
        at=now_rfc3339(),
    )


async def publish_loop(
    nc: NATS,
    signals: LoadSignals,
    in_flight: InFlightView,
    held: Callable[[], dict[str, int]],
    gateway: str,
    interval: float,
) -> None:
    """Publish every model's sample every ``interval`` seconds (until cancelled)."""
    while True:
        await asyncio.sleep(interval)
        for sample in signals.take(in_flight, held):
            await nc.publish(
                subjects.gateway_load(sample.model), sample_to_pb(sample, gateway).SerializeToString()
            )


class WakeSignals:
    """Publishes a ``ModelWake`` the moment requests for a model start being held.

    ``RequestHold`` calls ``wake`` synchronously on the request path; the publish happens on one
    owned task (``run``) that drains a queue, so a request never waits on NATS and nothing is
    spawned per request. Wakes are rare (once per hold episode of a model), so the queue is
    unbounded; the latest held count is read when the wake is sent.
    """

    def __init__(self, source: str, held: Callable[[str], int]) -> None:
        self._source = source
        self._held = held
        self._queue: asyncio.Queue[str] = asyncio.Queue()

    def wake(self, model: str) -> None:
        self._queue.put_nowait(model)

    async def run(self, nc: NATS) -> None:
        """Send queued wakes until cancelled (a failed send is logged: the next load sample,
        which counts held requests, still brings the model up at the next tick)."""
        while True:
            model = await self._queue.get()
            message = events_pb2.ModelWake(
                model=model, gateway=self._source, held=self._held(model), at=now_rfc3339()
            )
            try:
                await nc.publish(subjects.gateway_wake(model), message.SerializeToString())
            except Exception as exc:  # the connection is reconnecting or closed
                log.warning("wake_not_sent", model=model, error=str(exc) or repr(exc))
