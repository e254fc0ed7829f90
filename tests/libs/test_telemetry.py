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


def test_child_traceparent_continues_a_valid_parent() -> None:
    """A new hop keeps the caller's trace id and sampled flag and gets a fresh span id."""
    child = telemetry.child_traceparent(TRACEPARENT)
    version, trace_id, span_id, flags = child.split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert span_id != "00f067aa0ba902b7"
    assert len(span_id) == 16
    unsampled = telemetry.child_traceparent(f"00-{TRACE_ID}-00f067aa0ba902b7-00")
    assert unsampled.endswith("-00")


def test_child_traceparent_restarts_on_missing_or_malformed_parent() -> None:
    """No parent, or one the W3C spec says to ignore, starts a new sampled trace."""
    for parent in (
        None,
        "",
        "garbage",
        f"ff-{TRACE_ID}-00f067aa0ba902b7-01",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
    ):
        version, trace_id, span_id, flags = telemetry.child_traceparent(parent).split("-")
        assert version == "00"
        assert trace_id != TRACE_ID
        assert len(trace_id) == 32
        assert flags == "01"
        assert int(trace_id, 16)
        assert int(span_id, 16)


def test_unrecorded_hop_injects_its_child_context() -> None:
    """Without an exporter, a hop's injected context is a child of the incoming one, tracestate kept."""
    assert not telemetry.recording()
    tracer = trace.get_tracer("test")
    incoming = {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}
    with telemetry.server_span(tracer, "hop", incoming) as span:
        assert not span.is_recording()
        carrier: dict[str, str] = {}
        telemetry.inject_context(carrier)
    assert carrier["traceparent"].split("-")[1] == TRACE_ID
    assert carrier["traceparent"] != TRACEPARENT
    assert carrier["tracestate"] == "vendor=1"
    after: dict[str, str] = {}
    telemetry.inject_context(after)
    assert "traceparent" not in after  # the hop's context ends with its block


def test_unrecorded_hop_without_context_starts_a_trace() -> None:
    """A request with no trace context still sends one on (a new trace, no tracestate)."""
    with telemetry.server_span(trace.get_tracer("test"), "hop", {"tracestate": "stray=1"}):
        carrier: dict[str, str] = {}
        telemetry.inject_context(carrier)
    assert len(carrier["traceparent"].split("-")[1]) == 32
    assert "tracestate" not in carrier
