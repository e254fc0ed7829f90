"""Open Inference Protocol v2 gRPC adapter: ``inference.GRPCInferenceService`` over the handler.

Each call runs in ``_scope``, which binds the request id for logs, opens a server span that
continues incoming trace metadata, and turns failures into a status: our errors by their
``grpc_code_name``, a replica's own error status passed through with its code and details.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import grpc
import orjson
import structlog
from opentelemetry import trace

from modelplane.libs import v2_json
from modelplane.libs.errors import ModelplaneError
from modelplane.libs.logs import log_scope
from modelplane.libs.routes import RouteEndpoint
from modelplane.libs.telemetry import inject_context, server_span
from modelplane.proto import open_inference_pb2 as oip
from modelplane.proto import open_inference_pb2_grpc as oip_grpc
from modelplane.services.gateway.converters import input_headers_from_proto
from modelplane.services.gateway.dataflow import GRAPH, answer_error, flow_of, graph_answer_as_v2
from modelplane.services.gateway.experiments import ROUTE_HEADER
from modelplane.services.gateway.metrics import UNKNOWN_MODEL, GatewayMetrics
from modelplane.services.gateway.mirroring import Mirror, grpc_infer_copy
from modelplane.services.gateway.planner import Inbound, RequestPlanner
from modelplane.services.gateway.upstream_grpc import GrpcUpstream
from modelplane.services.gateway.validation import validate_inputs

log = structlog.get_logger(__name__)

REQUEST_ID_KEY = "x-request-id"
PROTOCOL = "grpc"

T = TypeVar("T")


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):  # "-bin" keys carry bytes; none of ours do
            out[key.lower()] = value
    return out


class InferenceServicer(oip_grpc.GRPCInferenceServiceServicer):
    """Routes V2 gRPC calls to the replicas that hold the model."""

    def __init__(
        self,
        planner: RequestPlanner,
        upstream: GrpcUpstream,
        metrics: GatewayMetrics,
        tracer: trace.Tracer,
        mirror: Mirror | None = None,
    ) -> None:
        # Auth, experiments, flows and the bounded hold are decided there (planner.py).
        self._planner = planner
        self._handler = planner.handler
        # Pipelines and inference graphs (dataflow.py); None: the gateway serves models only.
        self._dataflow = planner.dataflow
        self._mirror = mirror
        self._upstream = upstream
        self._metrics = metrics
        self._tracer = tracer

    # ---- cross-cutting ------------------------------------------------------------------------
    @contextmanager
    def _span(self, method: str, metadata: dict[str, str]) -> Iterator[trace.Span]:
        request_id = metadata.get(REQUEST_ID_KEY) or os.urandom(16).hex()
        with (
            log_scope(request_id=request_id),
            server_span(self._tracer, f"inference.GRPCInferenceService/{method}", metadata) as span,
        ):
            yield span

    async def _run(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        work: Callable[[dict[str, str]], Awaitable[T]],
        metric_model: Callable[[], str] | None = None,
        *,
        open: bool = False,
    ) -> T:
        """Run ``work`` and map its failure to a gRPC status (abort raises out of here).

        ``open`` calls (the health probes) need no token when the gateway requires auth."""
        metadata = _metadata(context)
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        details = ""
        result: T | None = None
        with self._span(method, metadata) as span:
            try:
                if not open:
                    # The one auth check of a gRPC call (the planner decides: access.py).
                    await self._planner.authenticate(metadata)
                result = await work(metadata)
            except ModelplaneError as exc:
                code, details = grpc.StatusCode[exc.grpc_code_name], str(exc)
            except grpc.aio.AioRpcError as exc:  # the replica answered with an error status
                code, details = exc.code(), exc.details() or ""
            except Exception:
                log.exception("grpc_call_crashed", method=method)
                code, details = grpc.StatusCode.INTERNAL, "internal error"
            span.set_attribute("rpc.grpc.status_code", code.value[0])
        if metric_model is not None:
            self._metrics.observe(metric_model(), PROTOCOL, code.name, time.perf_counter() - started)
        if code != grpc.StatusCode.OK:
            if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE):
                log.warning("grpc_call_failed", method=method, code=code.name, details=details)
            await context.abort(code, details)
        assert result is not None
        return result

    def _upstream_metadata(self, metadata: dict[str, str]) -> list[tuple[str, str]]:
        carrier: dict[str, str] = {}
        if REQUEST_ID_KEY in metadata:
            carrier[REQUEST_ID_KEY] = metadata[REQUEST_ID_KEY]
        inject_context(carrier)
        return list(carrier.items())

    def _name(self, requested: str, metadata: dict[str, str]) -> str:
        return self._planner.model_name(requested, metadata)

    # ---- methods ------------------------------------------------------------------------------
    async def ServerLive(
        self, request: oip.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> oip.ServerLiveResponse:
        async def work(_: dict[str, str]) -> oip.ServerLiveResponse:
            return oip.ServerLiveResponse(live=self._handler.live())

        return await self._run("ServerLive", context, work, open=True)

    async def ServerReady(
        self, request: oip.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> oip.ServerReadyResponse:
        async def work(_: dict[str, str]) -> oip.ServerReadyResponse:
            return oip.ServerReadyResponse(ready=self._handler.ready())

        return await self._run("ServerReady", context, work, open=True)

    async def ServerMetadata(
        self, request: oip.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> oip.ServerMetadataResponse:
        async def work(_: dict[str, str]) -> oip.ServerMetadataResponse:
            meta = self._handler.server_metadata()
            return oip.ServerMetadataResponse(
                name=meta.name, version=meta.version, extensions=list(meta.extensions)
            )

        return await self._run("ServerMetadata", context, work)

    async def ModelReady(
        self, request: oip.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> oip.ModelReadyResponse:
        async def work(metadata: dict[str, str]) -> oip.ModelReadyResponse:
            target = self._handler.resolve(self._name(request.name, metadata), request.version)
            # A known model without replicas is "not ready" (the response has a field for it).
            return oip.ModelReadyResponse(ready=bool(target.endpoints))

        return await self._run("ModelReady", context, work)

    async def ModelMetadata(
        self, request: oip.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> oip.ModelMetadataResponse:
        async def work(metadata: dict[str, str]) -> oip.ModelMetadataResponse:
            name = self._name(request.name, metadata)
            with log_scope(model=name):
                target = await self._handler.wait_ready_target(name, request.version)
                upstream_request = oip.ModelMetadataRequest(name=target.server_model_name)
                upstream_metadata = self._upstream_metadata(metadata)

                async def call(endpoint: RouteEndpoint) -> oip.ModelMetadataResponse:
                    return await self._upstream.model_metadata(endpoint, upstream_request, upstream_metadata)

                return await self._handler.forward(target, call)

        return await self._run("ModelMetadata", context, work)

    async def _flow_infer(
        self, request: oip.ModelInferRequest, kind: str, name: str, mirror: str | None = None
    ) -> oip.ModelInferResponse:
        """A pipeline's or an inference graph's answer: the request goes as V2 JSON through the
        dataflow stream, the answer comes back as protobuf."""
        assert self._dataflow is not None
        with log_scope(model=f"{name}.{kind}"):
            self._dataflow.check_known(kind, name)
            validate_inputs(input_headers_from_proto(request))
            # Answer in the form asked in, as MLServer does: raw contents for a raw request
            # (clients such as tritonclient read only those).
            raw = bool(request.raw_input_contents)
            body = orjson.dumps(v2_json.request_from_pb(request))
            mirrored = flow_of(mirror) if mirror is not None else None
            if mirrored is not None and self._mirror is not None:
                dataflow = self._dataflow
                self._mirror.send_call(mirror or "", lambda: dataflow.call(*mirrored, body))
            answer = await self._dataflow.call(kind, name, body)
            if answer.status != 200:
                raise answer_error(kind, name, answer)
            parsed = graph_answer_as_v2(name, answer.body) if kind == GRAPH else orjson.loads(answer.body)
            return v2_json.response_to_pb(parsed, raw=raw)

    async def ModelInfer(
        self, request: oip.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> oip.ModelInferResponse:
        label = UNKNOWN_MODEL

        async def work(metadata: dict[str, str]) -> oip.ModelInferResponse:
            nonlocal label
            plan = await self._planner.plan(Inbound(request.model_name, metadata, request.model_version))
            label = plan.metric_label
            if plan.route_header is not None:
                await context.send_initial_metadata(((ROUTE_HEADER, plan.route_header),))
            if plan.flow is not None:
                return await self._flow_infer(request, *plan.flow, mirror=plan.mirror)
            name = plan.name
            with log_scope(model=name):
                self._handler.check_known(name, request.model_version)
                validate_inputs(input_headers_from_proto(request))
                # Held (bounded) while the model has no ready replica: bad inputs are refused first.
                target = await self._planner.target(name, request.model_version, request.ByteSize())
                # Rewritten in place: the request is ours, and copying would copy the tensors.
                request.model_name = target.server_model_name
                request.model_version = ""
                upstream_metadata = self._upstream_metadata(metadata)
                if plan.mirror is not None and self._mirror is not None:
                    copy = grpc_infer_copy(self._handler, self._upstream, request, upstream_metadata)
                    self._mirror.send(plan.mirror, copy)

                async def call(endpoint: RouteEndpoint) -> oip.ModelInferResponse:
                    trace.get_current_span().set_attribute("modelplane.replica", endpoint.replica)
                    return await self._upstream.model_infer(
                        endpoint, request, upstream_metadata, target.timeout_seconds
                    )

                return await self._handler.forward(target, call)

        return await self._run("ModelInfer", context, work, metric_model=lambda: label)
