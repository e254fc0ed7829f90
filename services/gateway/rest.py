"""Open Inference Protocol v2 REST adapter (aiohttp): translate, call the handler, map errors.

One middleware wraps every request: it binds the request id for logs, opens a server span that
continues an incoming ``traceparent``, turns errors into JSON ``{"error": ...}`` bodies with the
status the error class names (plus ``Retry-After`` for retryable ones) and counts inference
requests. Route functions stay a few lines each.

Beyond the V2 routes: ``GET /v2/models`` lists the routable models (shape in model_list.py);
the binary tensor extension is translated for replicas that lack it (binary_tensors.py); KServe
V1 ``GET /v1/models/{m}`` and ``POST /v1/models/{m}:predict`` are converted to V2 calls
(kserve_v1.py), the predict input named after the model's metadata, cached per server model.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import orjson
import structlog
from aiohttp import web
from opentelemetry import trace

from modelplane.libs.errors import ModelplaneError, RetryableError
from modelplane.libs.routes import RouteEndpoint
from modelplane.libs.telemetry import extract_context
from modelplane.services.gateway import binary_tensors, kserve_v1
from modelplane.services.gateway.experiments import ROUTE_HEADER, ExperimentRouter, ExperimentTable
from modelplane.services.gateway.handler import (
    GatewayHandler,
    ModelNotResidentError,
    ReplicaBusyError,
    Target,
)
from modelplane.services.gateway.metrics import UNKNOWN_MODEL, GatewayMetrics
from modelplane.services.gateway.mirroring import Mirror
from modelplane.services.gateway.model_list import list_models
from modelplane.services.gateway.routing import RouteTable
from modelplane.services.gateway.upstream_http import (
    REQUEST_ID_HEADER,
    HttpReply,
    HttpUpstream,
    forwarded_headers,
)
from modelplane.services.gateway.validation import validate_infer_json

# Replica answers retried on another replica (Envoy's "gateway-error" policy): the request did
# not run on a model, or the replica said it cannot take it now. 4xx and 500 are never retried.
_RETRIED_STATUSES = frozenset(
    {HTTPStatus.BAD_GATEWAY, HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.GATEWAY_TIMEOUT}
)

log = structlog.get_logger(__name__)

SELDON_MODEL_HEADER = "seldon-model"
PROTOCOL = "rest"
# Server model names whose V1 input name is remembered (bounded; cleared when full).
V1_INPUT_NAME_CACHE_SIZE = 1024
# Request key holding the model label of an inference request (set only on infer routes).
_METRIC_MODEL = web.RequestKey("modelplane.metric_model", str)
# Request key holding the x-seldon-route value of a request an experiment routed.
_ROUTE = web.RequestKey("modelplane.seldon_route", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, content_type="application/json", headers=headers
    )


def error_response(exc: ModelplaneError) -> web.Response:
    headers: dict[str, str] = {}
    if isinstance(exc, RetryableError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.delay)))
    return json_response({"error": str(exc)}, status=exc.http_status, headers=headers)


def _reply_response(reply: HttpReply) -> web.Response:
    """A replica's answer passed to the client as it is."""
    return web.Response(body=reply.body, status=reply.status, headers={"Content-Type": reply.content_type})


class RestAdapter:
    """The V2 REST routes of the gateway plus /metrics."""

    def __init__(
        self,
        handler: GatewayHandler,
        upstream: HttpUpstream,
        metrics: GatewayMetrics,
        tracer: trace.Tracer,
        routes: RouteTable | None = None,
        experiments: ExperimentRouter | None = None,
        mirror: Mirror | None = None,
    ) -> None:
        self._handler = handler
        # Experiments (experiments.py): which candidate serves, and the mirror copy, if any.
        self._experiments = experiments if experiments is not None else ExperimentRouter(ExperimentTable())
        self._mirror = mirror
        self._upstream = upstream
        self._metrics = metrics
        self._tracer = tracer
        # GET /v2/models reads the route table. GatewayHandler has no public accessor for it
        # yet, so without an explicit table the handler's own is used (ask: app.py passes it).
        self._routes: RouteTable = routes if routes is not None else handler.routes
        self._v1_input_names: dict[str, str] = {}

    def application(self, max_request_bytes: int) -> web.Application:
        app = web.Application(client_max_size=max_request_bytes, middlewares=[self._middleware()])
        add = app.router
        add.add_get("/v2/health/live", self.live)
        add.add_get("/v2/health/ready", self.ready)
        add.add_get("/v2", self.server_metadata)
        add.add_get("/v2/models", self.list_models)
        add.add_get("/v2/models/{model}", self.model_metadata)
        add.add_get("/v2/models/{model}/versions/{version}", self.model_metadata)
        add.add_get("/v2/models/{model}/ready", self.model_ready)
        add.add_get("/v2/models/{model}/versions/{version}/ready", self.model_ready)
        add.add_post("/v2/models/{model}/infer", self.infer)
        add.add_post("/v2/models/{model}/versions/{version}/infer", self.infer)
        add.add_get("/v1/models/{model}", self.v1_model_ready)
        add.add_post("/v1/models/{model}:predict", self.v1_predict)
        add.add_get("/metrics", self.metrics)
        return app

    # ---- cross-cutting ------------------------------------------------------------------------
    def _middleware(self) -> Any:
        @web.middleware
        async def scope(request: web.Request, handler: Handler) -> web.StreamResponse:
            request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
            started = time.perf_counter()
            route = request.match_info.route.resource
            span_name = f"{request.method} {route.canonical if route else request.path}"
            with (
                structlog.contextvars.bound_contextvars(request_id=request_id),
                self._tracer.start_as_current_span(
                    span_name, context=extract_context(request.headers), kind=trace.SpanKind.SERVER
                ) as span,
            ):
                response = await self._respond(request, handler)
                response.headers[REQUEST_ID_HEADER] = request_id
                if _ROUTE in request:
                    response.headers[ROUTE_HEADER] = request[_ROUTE]
                span.set_attribute("http.response.status_code", response.status)
            model_label = request.get(_METRIC_MODEL)
            if model_label is not None:
                self._metrics.observe(
                    model_label, PROTOCOL, str(response.status), time.perf_counter() - started
                )
            return response

        return scope

    async def _respond(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ModelplaneError as exc:
            if exc.http_status >= 500:
                log.warning("request_failed", path=request.path, status=exc.http_status, error=str(exc))
            return error_response(exc)
        except web.HTTPException as exc:  # unknown path, wrong method, body too large
            return json_response({"error": exc.reason}, status=exc.status)
        except Exception:
            log.exception("request_crashed", path=request.path)
            return json_response({"error": "internal error"}, status=500)

    def _model_name(self, request: web.Request) -> str:
        return self._handler.model_name(request.match_info["model"], request.headers.get(SELDON_MODEL_HEADER))

    async def _call_replica(
        self, request: web.Request, target: Target, method: str, suffix: str, body: bytes | None
    ) -> HttpReply:
        headers = forwarded_headers(request.headers)
        path = f"/v2/models/{quote(target.server_model_name, safe='')}{suffix}"

        async def call(endpoint: RouteEndpoint) -> HttpReply:
            trace.get_current_span().set_attribute("modelplane.replica", endpoint.replica)
            reply = await self._upstream.request(
                method, endpoint, path, headers=headers, body=body, timeout=target.timeout_seconds
            )
            if reply.status == HTTPStatus.NOT_FOUND:
                # The replica lacks a model its route lists: maybe evicted (the handler reloads).
                raise ModelNotResidentError(
                    f"replica {endpoint.replica} has no model {target.server_model_name}", lambda: reply
                )
            if reply.status in _RETRIED_STATUSES:
                # Overloaded or in trouble before the model ran: another replica may answer.
                raise ReplicaBusyError(f"replica {endpoint.replica} answered {reply.status}", lambda: reply)
            return reply

        return await self._handler.forward(target, call)

    async def _forward(
        self, request: web.Request, target: Target, method: str, suffix: str, body: bytes | None
    ) -> web.Response:
        reply = await self._call_replica(request, target, method, suffix, body)
        return _reply_response(reply)

    # ---- routes -------------------------------------------------------------------------------
    async def live(self, request: web.Request) -> web.Response:
        return json_response({"live": self._handler.live()})

    async def ready(self, request: web.Request) -> web.Response:
        self._handler.check_ready()
        return json_response({"ready": True})

    async def server_metadata(self, request: web.Request) -> web.Response:
        meta = self._handler.server_metadata()
        return json_response(
            {"name": meta.name, "version": meta.version, "extensions": list(meta.extensions)}
        )

    async def model_metadata(self, request: web.Request) -> web.Response:
        name = self._model_name(request)
        with structlog.contextvars.bound_contextvars(model=name):
            target = await self._handler.wait_ready_target(name, request.match_info.get("version"))
            return await self._forward(request, target, "GET", "", None)

    async def model_ready(self, request: web.Request) -> web.Response:
        target = self._handler.ready_target(self._model_name(request), request.match_info.get("version"))
        return json_response({"name": target.model, "ready": True})

    async def list_models(self, request: web.Request) -> web.Response:
        return json_response({"models": [m.to_json() for m in list_models(self._routes)]})

    async def infer(self, request: web.Request) -> web.Response:
        routed = self._experiments.route(self._model_name(request), request.headers)
        name = routed.model
        if routed.route_header is not None:
            request[_ROUTE] = routed.route_header
        request[_METRIC_MODEL] = name if self._handler.knows(name) else UNKNOWN_MODEL
        with structlog.contextvars.bound_contextvars(model=name):
            self._handler.check_known(name, request.match_info.get("version"))
            body = await request.read()
            json_length = binary_tensors.header_length(
                request.headers.get(binary_tensors.HEADER_LENGTH), len(body)
            )
            parsed = validate_infer_json(body, json_length)
            # Held (bounded) while the model has no ready replica: a bad body is refused first.
            target = await self._handler.wait_ready_target(name, request.match_info.get("version"))
            # The replica (MLServer) lacks the binary extension: binary inputs go as JSON data.
            if json_length is not None and binary_tensors.decode_inputs(
                parsed, memoryview(body)[json_length:]
            ):
                body = orjson.dumps(parsed)
            binary_outputs = binary_tensors.binary_output_choice(parsed)
            if routed.mirror is not None and self._mirror is not None:
                copy = body  # the mirror gets the body the candidate gets; its answer is dropped
                self._mirror.send(
                    routed.mirror, lambda mirror: self._call_replica(request, mirror, "POST", "/infer", copy)
                )
            reply = await self._call_replica(request, target, "POST", "/infer", body)
            if binary_outputs is None or reply.status != HTTPStatus.OK:
                return _reply_response(reply)
            encoded = binary_tensors.encode_outputs(orjson.loads(reply.body), binary_outputs)
            if encoded is None:
                return _reply_response(reply)
            payload, header_length = encoded
            return web.Response(
                body=payload,
                headers={
                    "Content-Type": binary_tensors.BINARY_CONTENT_TYPE,
                    binary_tensors.HEADER_LENGTH: str(header_length),
                },
            )

    # ---- KServe V1 ----------------------------------------------------------------------------
    async def v1_model_ready(self, request: web.Request) -> web.Response:
        name = self._model_name(request)
        try:
            ready = bool(self._handler.resolve(name).endpoints)
        except RetryableError:  # known, but no version is available yet
            ready = False
        return json_response({"name": name, "ready": ready})

    async def v1_predict(self, request: web.Request) -> web.Response:
        name = self._model_name(request)
        request[_METRIC_MODEL] = name if self._handler.knows(name) else UNKNOWN_MODEL
        with structlog.contextvars.bound_contextvars(model=name):
            self._handler.check_known(name)
            tensor = kserve_v1.parse_instances(await request.read())
            target = await self._handler.wait_ready_target(name)
            input_name = await self._v1_input_name(request, target)
            body = orjson.dumps(tensor.v2_request(input_name))
            reply = await self._call_replica(request, target, "POST", "/infer", body)
            if reply.status != HTTPStatus.OK:
                return _reply_response(reply)
            return json_response(kserve_v1.predictions(orjson.loads(reply.body)))

    async def _v1_input_name(self, request: web.Request, target: Target) -> str:
        """The model's only input name per its V2 metadata (asked once per server model)."""
        cached = self._v1_input_names.get(target.server_model_name)
        if cached is not None:
            return cached
        reply = await self._call_replica(request, target, "GET", "", None)
        if reply.status != HTTPStatus.OK:
            # The infer call that follows reports what is wrong with the model.
            return kserve_v1.DEFAULT_INPUT_NAME
        try:
            name = kserve_v1.input_name(orjson.loads(reply.body))
        except orjson.JSONDecodeError:
            name = kserve_v1.DEFAULT_INPUT_NAME
        if len(self._v1_input_names) >= V1_INPUT_NAME_CACHE_SIZE:
            self._v1_input_names.clear()
        self._v1_input_names[target.server_model_name] = name
        return name

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.render(), headers={"Content-Type": self._metrics.content_type})
