"""OpenTelemetry tracing set-up and W3C trace-context propagation shared by every service.

Design: ``setup_tracing`` installs one SDK ``TracerProvider`` per process (OpenTelemetry's
provider is process-global by the library's own design, so this module remembers that it did
it and a second call is a no-op). Spans are exported only when the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` variable is set; without it spans still get real ids, so trace
context flows through a service even when nothing collects it. ``OTEL_EXPORTER_OTLP_PROTOCOL``
picks ``grpc`` (the OTLP default) or ``http/protobuf``.

Propagation uses plain string mappings (HTTP headers, gRPC metadata) so callers need no
OpenTelemetry types beyond ``Context``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

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
    _PROPAGATOR.inject(carrier, context=context)
