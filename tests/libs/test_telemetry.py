"""Tracing set-up and W3C trace-context propagation."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from modelplane.libs import telemetry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_no_exporter_without_otlp_endpoint() -> None:
    """Without OTEL_EXPORTER_OTLP_ENDPOINT spans are made but never exported."""
    provider = telemetry.build_tracer_provider("svc", env={})
    try:
        assert telemetry.span_processors(provider) == ()
        assert provider.resource.attributes["service.name"] == "svc"
    finally:
        provider.shutdown()


def test_otlp_batch_exporter_when_endpoint_is_set() -> None:
    """With the endpoint set, spans go through a BatchSpanProcessor (grpc or http protocol)."""
    for protocol in ("grpc", "http/protobuf"):
        provider = telemetry.build_tracer_provider(
            "svc",
            env={
                telemetry.OTLP_ENDPOINT_ENV: "http://127.0.0.1:1",
                telemetry.OTLP_PROTOCOL_ENV: protocol,
            },
        )
        try:
            (processor,) = telemetry.span_processors(provider)
            assert isinstance(processor, BatchSpanProcessor)
        finally:
            provider.shutdown()


def test_setup_tracing_is_idempotent() -> None:
    """A second setup_tracing call keeps the first provider."""
    telemetry.setup_tracing("first")
    first = trace.get_tracer_provider()
    telemetry.setup_tracing("second")
    assert trace.get_tracer_provider() is first
    assert isinstance(first, TracerProvider)


def test_extract_then_inject_keeps_the_trace() -> None:
    """Context extracted from headers (any case) is injected again with the same trace id."""
    context = telemetry.extract_context({"TraceParent": TRACEPARENT})
    carrier: dict[str, str] = {}
    telemetry.inject_context(carrier, context)
    assert carrier["traceparent"] == TRACEPARENT


def test_spans_started_from_incoming_context_join_its_trace() -> None:
    """A span opened under an extracted context carries the caller's trace id downstream."""
    provider = telemetry.build_tracer_provider("svc", env={})
    try:
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span(
            "op", context=telemetry.extract_context({"traceparent": TRACEPARENT})
        ):
            carrier: dict[str, str] = {}
            telemetry.inject_context(carrier)
        assert carrier["traceparent"].split("-")[1] == TRACE_ID
        assert carrier["traceparent"] != TRACEPARENT  # a new span id: ours
    finally:
        provider.shutdown()


def test_missing_context_extracts_to_nothing() -> None:
    """No traceparent -> nothing is injected for that context."""
    carrier: dict[str, str] = {}
    telemetry.inject_context(carrier, telemetry.extract_context({}))
    assert carrier == {}
