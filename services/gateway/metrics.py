"""Prometheus metrics of the gateway, in a registry of its own (no process-global state)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

# Label used for requests naming a model the gateway does not know: putting arbitrary client
# input into a label would let any client grow the metric set without bound.
UNKNOWN_MODEL = "unknown"


class GatewayMetrics:
    """Counts and times inference requests per model and protocol."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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

    def observe(self, model: str, protocol: str, code: str, seconds: float) -> None:
        self._requests.labels(model=model, protocol=protocol, code=code).inc()
        self._duration.labels(model=model, protocol=protocol).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
