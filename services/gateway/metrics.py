"""Prometheus metrics of the gateway, in a registry of its own (no process-global state).

Requests are counted and timed as they end; in-flight and held requests are read from the
handler when /metrics is scraped (``watch``), so they are never out of step. Every observed
request also feeds the load signals published on NATS (load_signals.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from modelplane.libs.dataplane.balancers.in_flight import InFlightView
from modelplane.libs.dataplane.load_signals import LoadSignals, model_of_key
from modelplane.libs.store import UNDECODABLE_VALUES

# Label used for requests naming a model the gateway does not know: putting arbitrary client
# input into a label would let any client grow the metric set without bound.
UNKNOWN_MODEL = "unknown"


class GatewayMetrics:
    """Counts and times inference requests per model and protocol."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # KV values this process skipped because they did not parse (libs/store.py).
        self.registry.register(UNDECODABLE_VALUES)
        self._requests = Counter(
            "modelplane_gateway_requests",
            "Inference requests handled by the gateway, by model, protocol (rest|grpc) and result code.",
            ("model", "protocol", "code"),
            registry=self.registry,
        )
        self._duration = Histogram(
            "modelplane_gateway_request_duration_seconds",
            "Time from receiving an inference request to sending its response, in seconds.",
            ("model", "protocol"),
            registry=self.registry,
        )
        self.load = LoadSignals(time.monotonic)
        # Labelled children per (model, protocol, code): ``labels()`` resolves keyword labels on
        # every call, which cost more than the observation itself on the per-request path. The
        # label sets are bounded (known models x protocols x codes; UNKNOWN_MODEL otherwise).
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def watch(self, in_flight: InFlightView, held: Callable[[], dict[str, int]]) -> None:
        """Report in-flight and held requests from these sources at every scrape."""
        self.registry.register(_LiveCounts(in_flight, held))

    def watch_held_bytes(self, held_bytes: Callable[[], dict[str, int]]) -> None:
        """Report the bytes held for held requests, per model (``HeldBytes.by_model``), at every scrape."""
        self.registry.register(_HeldBytes(held_bytes))

    def watch_mirror(self, counts: Callable[[], dict[str, int]]) -> None:
        """Report the mirror's copies by result (``Mirror.counts``) at every scrape."""
        self.registry.register(_MirrorCounts(counts))

    def observe(self, model: str, protocol: str, code: str, seconds: float) -> None:
        key = (model, protocol, code)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self._requests.labels(model=model, protocol=protocol, code=code),
                self._duration.labels(model=model, protocol=protocol),
            )
        children[0].inc()
        children[1].observe(seconds)
        if model != UNKNOWN_MODEL:
            self.load.observe(model, seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCounts(Collector):
    """Gauges read at scrape time: requests in flight per model and per replica, held per model."""

    def __init__(self, in_flight: InFlightView, held: Callable[[], dict[str, int]]) -> None:
        self._in_flight = in_flight
        self._held = held

    def collect(self) -> Iterator[GaugeMetricFamily]:
        per_model = GaugeMetricFamily(
            "modelplane_gateway_in_flight", "Requests being answered by replicas, by model.", labels=["model"]
        )
        totals: dict[str, int] = {}
        for key, count in self._in_flight.by_key().items():
            model = model_of_key(key)
            totals[model] = totals.get(model, 0) + count
        for model, count in sorted(totals.items()):
            per_model.add_metric([model], count)
        yield per_model
        per_replica = GaugeMetricFamily(
            "modelplane_gateway_replica_in_flight",
            "Requests being answered, by replica (<server>.<index>).",
            labels=["replica"],
        )
        for replica, count in sorted(self._in_flight.by_replica().items()):
            per_replica.add_metric([replica], count)
        yield per_replica
        held = GaugeMetricFamily(
            "modelplane_gateway_held_requests",
            "Requests waiting for a model to have a ready replica, by model.",
            labels=["model"],
        )
        for model, count in sorted(self._held().items()):
            held.add_metric([model], count)
        yield held


class _HeldBytes(Collector):
    """Bytes reserved for held requests, per model, read at scrape time."""

    def __init__(self, held_bytes: Callable[[], dict[str, int]]) -> None:
        self._held_bytes = held_bytes

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "modelplane_gateway_held_bytes",
            "Bytes of request bodies held for models with no ready replica (bounded per model and in total).",
            labels=["model"],
        )
        for model, size in sorted(self._held_bytes().items()):
            family.add_metric([model], size)
        yield family


class _MirrorCounts(Collector):
    """Request copies sent to experiment mirrors, by result, read at scrape time."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "modelplane_gateway_mirror_requests",
            "Copies of requests sent to experiment mirrors, by result: answered, failed, dropped"
            " (not sent: mirror not ready or too many copies in flight).",
            labels=["result"],
        )
        for result, count in sorted(self._counts().items()):
            family.add_metric([result], count)
        yield family
