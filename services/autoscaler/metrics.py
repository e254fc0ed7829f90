"""Prometheus metrics of the autoscaler, in a registry of its own, served on /metrics.

Gauges are set as decisions are made (a model's replicas and averaged load, a server's replicas);
counters count the changes applied, by kind and direction. ``leader`` says which instance of
several is deciding (the others' gauges are stale by design: they do not decide).
"""

from __future__ import annotations

import contextlib

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from modelplane.libs.store import UNDECODABLE_VALUES
from modelplane.services.autoscaler.handler import Scaled
from modelplane.services.autoscaler.server_scaling import ServerDecision


class AutoscalerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # KV values this process skipped because they did not parse (libs/store.py).
        self.registry.register(UNDECODABLE_VALUES)
        self._model_current = Gauge(
            "modelplane_autoscaler_model_current_replicas",
            "A model's replicas when the autoscaler last decided.",
            ("model",),
            registry=self.registry,
        )
        self._model_desired = Gauge(
            "modelplane_autoscaler_model_desired_replicas",
            "The replicas the autoscaler last decided for a model.",
            ("model",),
            registry=self.registry,
        )
        self._model_average = Gauge(
            "modelplane_autoscaler_model_average_load",
            "A model's load averaged over the window (in-flight requests, or requests per second).",
            ("model",),
            registry=self.registry,
        )
        self._server_replicas = Gauge(
            "modelplane_autoscaler_server_replicas",
            "The replicas the autoscaler last applied to a server.",
            ("server",),
            registry=self.registry,
        )
        self._scalings = Counter(
            "modelplane_autoscaler_scalings",
            "Replica changes applied, by kind (Model|Server) and direction (up|down).",
            ("kind", "direction"),
            registry=self.registry,
        )
        self._leader = Gauge(
            "modelplane_autoscaler_leader",
            "1 while this instance holds the autoscaler lease and decides, else 0.",
            registry=self.registry,
        )

    def model_decided(self, scaled: Scaled) -> None:
        d = scaled.decision
        self._model_current.labels(model=scaled.model).set(d.current)
        self._model_desired.labels(model=scaled.model).set(d.desired)
        self._model_average.labels(model=scaled.model).set(d.average)
        if d.changes:
            self._scalings.labels(kind="Model", direction="up" if d.desired > d.current else "down").inc()

    def model_forgotten(self, model: str) -> None:
        for gauge in (self._model_current, self._model_desired, self._model_average):
            with contextlib.suppress(KeyError):
                gauge.remove(model)

    def server_scaled(self, decision: ServerDecision) -> None:
        self._server_replicas.labels(server=decision.server).set(decision.desired)
        direction = "up" if decision.desired > decision.current else "down"
        self._scalings.labels(kind="Server", direction=direction).inc()

    def leading(self, leader: bool) -> None:
        self._leader.set(1 if leader else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
