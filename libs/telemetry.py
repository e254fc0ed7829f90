"""OpenTelemetry tracing set-up and W3C trace-context propagation shared by every service.

Design: ``setup_tracing`` installs one SDK ``TracerProvider`` per process (OpenTelemetry's
provider is process-global by the library's own design, so this module remembers that it did
it and a second call is a no-op). Spans are exported only when the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` variable is set; without it spans still get real ids, so trace
context flows through a service even when nothing collects it. ``OTEL_EXPORTER_OTLP_PROTOCOL``
picks ``grpc`` (the OTLP default) or ``http/protobuf``.

Propagation uses plain string mappings (HTTP headers, gRPC metadata) so callers need no
OpenTelemetry types beyond ``Context``.

``server_span`` opens the span of one hop (a request a service answers). When no exporter is
installed a span would be built only to be dropped, and on the gateway's data plane that cost
about a fifth of its CPU per request; so then it records nothing and only keeps the W3C
context moving: the hop gets a fresh span id under the caller's trace (or a new trace), which
``inject_context`` sends on, exactly the ids an unexported SDK span would have had.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTLP_PROTOCOL_ENV = "OTEL_EXPORTER_OTLP_PROTOCOL"

# W3C trace context only (traceparent/tracestate): what Envoy, Seldon and KServe speak.
_PROPAGATOR = TraceContextTextMapPropagator()
# The process-wide provider installed by setup_tracing (OpenTelemetry allows setting it once).
_installed: TracerProvider | None = None
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# The (traceparent, tracestate) of the current hop when ``server_span`` records no span.
_unrecorded: ContextVar[tuple[str, str | None] | None] = ContextVar("modelplane_unrecorded_hop", default=None)


def _otlp_exporter(protocol: str) -> SpanExporter:
    # Imported lazily: the exporters pull in grpc/requests machinery a process may not need.
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    return GrpcExporter()


def build_tracer_provider(service_name: str, env: Mapping[str, str] | None = None) -> TracerProvider:
    """A provider named ``service_name`` with an OTLP batch exporter iff the endpoint is set."""
    environ = os.environ if env is None else env
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    if environ.get(OTLP_ENDPOINT_ENV):
        protocol = environ.get(OTLP_PROTOCOL_ENV, "grpc")
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(protocol)))
    return provider


def span_processors(provider: TracerProvider) -> tuple[SpanProcessor, ...]:
    """The processors attached to ``provider`` (the SDK offers no public accessor)."""
    return tuple(provider._active_span_processor._span_processors)


def setup_tracing(service_name: str) -> None:
    """Install the process's tracer provider once; later calls do nothing."""
    global _installed
    if _installed is not None:
        return
    provider = build_tracer_provider(service_name)
    trace.set_tracer_provider(provider)
    _installed = provider


def shutdown_tracing() -> None:
    """Flush and stop the installed provider's exporters (call once at process exit)."""
    if _installed is not None:
        _installed.shutdown()


def extract_context(carrier: Mapping[str, str]) -> Context:
    """The trace context carried by incoming headers/metadata (empty when there is none)."""
    # Header names are case-insensitive in HTTP and lower-case in gRPC metadata.
    lowered = {key.lower(): value for key, value in carrier.items()}
    return _PROPAGATOR.extract(lowered)


def inject_context(carrier: MutableMapping[str, str], context: Context | None = None) -> None:
    """Add ``traceparent`` (and ``tracestate``) for the current or given context to ``carrier``."""
    if context is None:
        hop = _unrecorded.get()
        if hop is not None:
            carrier[TRACEPARENT] = hop[0]
            if hop[1]:
                carrier[TRACESTATE] = hop[1]
            return
    _PROPAGATOR.inject(carrier, context=context)


def recording() -> bool:
    """Whether this process's spans go anywhere (its SDK provider has a span processor)."""
    provider = trace.get_tracer_provider()
    return isinstance(provider, TracerProvider) and bool(span_processors(provider))


_HEX = frozenset("0123456789abcdef")


def _valid_id(value: str, length: int) -> bool:
    return len(value) == length and _HEX.issuperset(value) and value != "0" * length


def _continued(parent: str | None) -> tuple[str, int] | None:
    """The trace id and sampled flag of a valid W3C ``parent``; None when absent or malformed."""
    if parent is None:
        return None
    parts = parent.strip().lower().split("-")
    if (
        len(parts) >= 4
        and parts[0] != "ff"
        and _valid_id(parts[1], 32)
        and _valid_id(parts[2], 16)
        and len(parts[3]) == 2
        and _HEX.issuperset(parts[3])
        and (parts[0] != "00" or len(parts) == 4)
    ):
        return parts[1], int(parts[3], 16) & 1
    return None


def _child_of(continued: tuple[str, int] | None) -> str:
    if continued is not None:
        return f"00-{continued[0]}-{os.urandom(8).hex()}-{continued[1]:02x}"
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def child_traceparent(parent: str | None) -> str:
    """A W3C traceparent for a new hop: the parent's trace and flags with a fresh span id, or a
    new sampled trace when ``parent`` is absent or malformed (as the W3C spec says to restart)."""
    return _child_of(_continued(parent))


@contextmanager
def server_span(tracer: trace.Tracer, name: str, carrier: Mapping[str, str]) -> Iterator[trace.Span]:
    """The span of one hop answering a request whose headers/metadata are ``carrier``.

    ``carrier`` keys must be lower-case (gRPC metadata is; the gateway's HTTP headers are).
    Without an exporter no span is recorded (see the module docstring): the yielded span is
    OpenTelemetry's non-recording one, whose attribute setters do nothing.
    """
    if recording():
        with tracer.start_as_current_span(
            name, context=extract_context(carrier), kind=trace.SpanKind.SERVER
        ) as span:
            yield span
        return
    continued = _continued(carrier.get(TRACEPARENT))
    # A tracestate belongs to its trace: it travels on only when the caller's trace continues.
    state = carrier.get(TRACESTATE) if continued is not None else None
    token = _unrecorded.set((_child_of(continued), state))
    try:
        yield trace.INVALID_SPAN
    finally:
        _unrecorded.reset(token)
