"""Open Inference Protocol v2 REST adapter: translate, call the handler, map errors.

The gateway serves REST with its own HTTP/1.1 server (http1/server.py); ``serve`` is that
server's request handler. It finds the route (http1/router.py), binds the request id for logs,
opens a server span that continues an incoming ``traceparent``, turns errors into JSON
``{"error": ...}`` bodies with the status the error class names (plus ``Retry-After`` for
retryable ones; each route may shape errors its own way, see ``RestRoute``) and counts inference
requests. Route functions stay a few lines each.

Beyond the V2 routes: ``GET /v2/models`` lists the routable models (shape in model_list.py);
the binary tensor extension is translated for replicas that lack it (binary_tensors.py).
``plan_known``, ``target``, ``call_replica``, the mirrors and the ``*_for`` / ``*_of`` methods
serve other adapters' routes over the same machinery (KServe V1: kserve_v1_routes.py; Seldon
Core v1's paths: seldon_routes.py).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import quote

import orjson
import structlog
from opentelemetry import trace

from modelplane.libs.dataplane.handler import Target
from modelplane.libs.dataplane.upstream_http import (
    REQUEST_ID_HEADER,
    HttpReply,
    HttpUpstream,
    checked_reply,
    forwarded_headers,
)
from modelplane.libs.errors import InvalidError, ModelplaneError, NotFoundError, RetryableError
from modelplane.libs.http1.messages import HttpRequest, HttpResponse, RequestHead, Response
from modelplane.libs.http1.router import Match, MethodNotAllowed, Params, Router
from modelplane.libs.logs import log_scope
from modelplane.libs.routes import RouteEndpoint
from modelplane.libs.telemetry import server_span
from modelplane.services.gateway import binary_tensors
from modelplane.services.gateway.binary_tensors import BinaryRequest
from modelplane.services.gateway.cors import CorsPolicy
from modelplane.services.gateway.dataflow import GRAPH, PIPELINE, flow_of
from modelplane.services.gateway.experiments import ROUTE_HEADER
from modelplane.services.gateway.held_bytes import RESERVATION, Reservation
from modelplane.services.gateway.metrics import UNKNOWN_MODEL, GatewayMetrics
from modelplane.services.gateway.mirroring import Mirror
from modelplane.services.gateway.model_list import list_models
from modelplane.services.gateway.planner import Inbound, Plan, RequestPlanner
from modelplane.services.gateway.replica_extensions import BINARY_TENSOR_DATA, ReplicaExtensions
from modelplane.services.gateway.validation import load_json_object, validate_infer_json

log = structlog.get_logger(__name__)

PROTOCOL = "rest"
JSON: Final = "application/json"
# The binary tensor extension's header, as the gateway's lower-case header maps hold it.
_HEADER_LENGTH: Final = binary_tensors.HEADER_LENGTH.lower()
# Seconds to wait for a replica's server metadata (asked once per replica, see replica_extensions).
_METADATA_TIMEOUT: Final = 5.0
# HttpRequest.state keys: the model label of an inference request (set only on infer routes)
# and the x-seldon-route value of a request an experiment routed.
METRIC_MODEL: Final = "metric_model"
ROUTE_STATE: Final = "seldon_route"
# Set by ``admit`` from the request's head: its route match, and its caller once verified.
MATCH_STATE: Final = "route_match"
CALLER_STATE: Final = "caller"

# WWW-Authenticate of a 401 (RFC 6750).
_CHALLENGE: Final = 'Bearer realm="modelplane-gateway"'

Endpoint = Callable[[HttpRequest, Params], Awaitable[Response]]


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    answer = {"content-type": JSON}
    if headers:
        answer.update(headers)
    return HttpResponse(status, orjson.dumps(payload), answer)


def error_response(exc: ModelplaneError) -> HttpResponse:
    headers: dict[str, str] = {}
    if isinstance(exc, RetryableError):
        headers["retry-after"] = str(max(1, math.ceil(exc.delay)))
    return json_response({"error": str(exc)}, status=exc.http_status, headers=headers)


def reply_response(reply: HttpReply) -> HttpResponse:
    """A replica's answer passed to the client as it is (with its binary tensor header, if any)."""
    headers = {"content-type": reply.content_type}
    json_length = reply.headers.get(_HEADER_LENGTH)
    if json_length is not None:
        headers[_HEADER_LENGTH] = json_length
    return HttpResponse(reply.status, reply.body, headers)


@dataclass(frozen=True, slots=True)
class RestRoute:
    """One route: its endpoint, how its errors are shaped, and its metrics protocol label."""

    endpoint: Endpoint
    errors: Callable[[ModelplaneError], HttpResponse] = error_response
    protocol: str = PROTOCOL
    # Open routes need no token when the gateway requires auth: health probes and /metrics,
    # which load balancers and Prometheus call without one.
    open: bool = False
    # A model's inference (``{model}`` in the path): its body is reserved from the held bytes
    # while the model has no ready replica (see ``admit``).
    held: bool = False


class RestAdapter:
    """The V2 REST routes of the gateway plus /metrics; ``serve`` answers every REST request."""

    def __init__(
        self,
        planner: RequestPlanner,
        upstream: HttpUpstream,
        metrics: GatewayMetrics,
        tracer: trace.Tracer,
        mirror: Mirror | None = None,
        cors: CorsPolicy | None = None,
        max_body_bytes: int = 100 * 1024 * 1024,
    ) -> None:
        self._max_body_bytes = max_body_bytes
        # Auth, experiments, flows and the bounded hold are decided there (planner.py).
        self._planner = planner
        self.planner = planner
        self._handler = planner.handler
        # Pipelines and inference graphs (dataflow.py); None: the gateway serves models only.
        self._dataflow = planner.dataflow
        self._mirror = mirror
        self.mirror = mirror
        self._cors = cors if cors is not None else CorsPolicy(())
        self._upstream = upstream
        self._metrics = metrics
        self._tracer = tracer
        self._routes = self._handler.routes
        self._extensions = ReplicaExtensions(self._server_metadata_of)
        self.router: Router[RestRoute] = Router()
        for method, template, endpoint in (
            ("GET", "/v2", self.server_metadata),
            ("GET", "/v2/models", self.list_models),
            ("GET", "/v2/models/{model}", self.model_metadata),
            ("GET", "/v2/models/{model}/versions/{version}", self.model_metadata),
            ("GET", "/v2/models/{model}/ready", self.model_ready),
            ("GET", "/v2/models/{model}/versions/{version}/ready", self.model_ready),
            ("POST", "/v2/pipelines/{pipeline}/infer", self.pipeline_infer),
            ("POST", "/graphs/{graph}", self.graph_infer),
        ):
            self.router.add(method, template, RestRoute(endpoint))
        for template in ("/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer"):
            self.router.add("POST", template, RestRoute(self.infer, held=True))
        for template, endpoint in (
            ("/v2/health/live", self.live),
            ("/v2/health/ready", self.ready),
            ("/metrics", self.metrics),
        ):
            self.router.add("GET", template, RestRoute(endpoint, open=True))

    # ---- cross-cutting ------------------------------------------------------------------------
    def admit(self, head: RequestHead) -> Response | None:
        """The HTTP server's admission hook, called before a request's body is read: a foreign
        origin (403) or a missing token (401) is refused unread (the connection then closes),
        and a model infer that would be held reserves its declared size (``state[RESERVATION]``,
        given back when the server is done with the request) or gets 503 unread."""
        headers = head.headers
        refused = self._cors.refusal_for(headers)
        if refused is not None:
            return refused
        found = self.router.match(head.method, head.raw_path)
        if found is None or isinstance(found, MethodNotAllowed):
            return None
        # What the head settled, ``serve`` does not do again: the route and (when the token
        # store could answer at once) the caller.
        head.state[MATCH_STATE] = found
        if not found.endpoint.open:
            try:
                principal = self._planner.precheck(headers)
            except ModelplaneError as exc:
                response = found.endpoint.errors(exc)
                if exc.http_status == 401:
                    response.headers["www-authenticate"] = _CHALLENGE
                return response
            if principal is not None:
                head.state[CALLER_STATE] = principal
        if not found.endpoint.held:
            return None
        model = self._planner.held_model(Inbound(found.params["model"], headers, found.params.get("version")))
        if model is None:
            return None
        try:
            declared = int(headers.get("content-length") or "")
        except ValueError:
            # Chunked: the size is unknown until read, so the largest body is reserved.
            declared = self._max_body_bytes
        try:
            reservation = self._planner.held_bytes.reserve(model, declared)
        except ModelplaneError as exc:
            log.warning("held_bytes_refused", model=model, bytes=declared, error=str(exc))
            return error_response(exc)
        head.state[RESERVATION] = reservation
        head.on_finish(reservation.release)
        return None

    async def serve(self, request: HttpRequest) -> Response:
        """The HTTP server's handler: cross-origin policy, route, auth, trace, map errors, count."""
        refused = self._cors.refusal(request)
        if refused is not None:
            return refused
        if self._cors.is_preflight(request):
            return self._cors.preflight(request)
        response = await self._serve_routed(request)
        self._cors.decorate(request, response)
        return response

    def _route_of(self, request: HttpRequest) -> Match[RestRoute] | MethodNotAllowed | None:
        matched = request.state.get(MATCH_STATE)
        if isinstance(matched, Match):  # admit matched it from the head
            return matched
        return self.router.match(request.method, request.raw_path)

    async def _serve_routed(self, request: HttpRequest) -> Response:
        found = self._route_of(request)
        if found is None:
            return json_response({"error": f"no route for {request.method} {request.path}"}, 404)
        if isinstance(found, MethodNotAllowed):
            return json_response(
                {"error": f"method {request.method} is not allowed on {request.path}"},
                405,
                {"allow": ", ".join(found.allowed)},
            )
        route = found.endpoint
        request_id = request.headers.get(REQUEST_ID_HEADER) or os.urandom(16).hex()
        started = time.perf_counter()
        with (
            log_scope(request_id=request_id),
            server_span(self._tracer, f"{request.method} {found.template}", request.headers) as span,
        ):
            try:
                if not route.open and CALLER_STATE not in request.state:
                    # The one auth check of a REST request (the planner decides: access.py),
                    # unless its head already settled it (admit).
                    await self._planner.authenticate(request.headers)
                response = await route.endpoint(request, found.params)
            except ModelplaneError as exc:
                if exc.http_status >= 500:
                    log.warning("request_failed", path=request.path, status=exc.http_status, error=str(exc))
                response = route.errors(exc)
            except Exception:
                log.exception("request_crashed", path=request.path)
                response = json_response({"error": "internal error"}, status=500)
            response.headers[REQUEST_ID_HEADER] = request_id
            if response.status == HTTPStatus.UNAUTHORIZED:
                response.headers["www-authenticate"] = _CHALLENGE
            routed = request.state.get(ROUTE_STATE)
            if routed is not None:
                response.headers[ROUTE_HEADER] = str(routed)
            span.set_attribute("http.response.status_code", response.status)
        model_label = request.state.get(METRIC_MODEL)
        if model_label is not None:
            self._metrics.observe(
                str(model_label), route.protocol, str(response.status), time.perf_counter() - started
            )
        return response

    def _model_name(self, request: HttpRequest, params: Params) -> str:
        return self._planner.model_name(params["model"], request.headers)

    async def plan(self, request: HttpRequest, inbound: Inbound) -> Plan:
        """The planner's decision for an inference request, its label and route header noted."""
        request.state[METRIC_MODEL] = UNKNOWN_MODEL
        plan = await self._planner.plan(inbound)
        request.state[METRIC_MODEL] = plan.metric_label
        if plan.route_header is not None:
            request.state[ROUTE_STATE] = plan.route_header
        return plan

    async def plan_known(self, request: HttpRequest, inbound: Inbound) -> Plan:
        """``plan``, and NotFoundError unless the model, pipeline or graph it names exists."""
        plan = await self.plan(request, inbound)
        if plan.flow is None:
            self._handler.check_known(plan.name, inbound.version)
        elif self._dataflow is not None:
            self._dataflow.check_known(*plan.flow)
        return plan

    async def target(self, request: HttpRequest, model: str, version: str | None) -> Target:
        """The model's ready target, held (bounded in bytes too) while it has none."""
        reserved = request.state.get(RESERVATION)
        return await self._planner.target(
            model, version, len(request.body), reserved if isinstance(reserved, Reservation) else None
        )

    async def call_replica(
        self, request: HttpRequest, target: Target, method: str, suffix: str, body: bytes | None
    ) -> HttpReply:
        headers = forwarded_headers(request.headers)
        path = f"/v2/models/{quote(target.server_model_name, safe='')}{suffix}"

        async def call(endpoint: RouteEndpoint) -> HttpReply:
            trace.get_current_span().set_attribute("modelplane.replica", endpoint.replica)
            reply = await self._upstream.request(
                method, endpoint, path, headers=headers, body=body, timeout=target.timeout_seconds
            )
            return checked_reply(endpoint, target.server_model_name, reply)

        return await self._handler.forward(target, call)

    async def _forward(
        self, request: HttpRequest, target: Target, method: str, suffix: str, body: bytes | None
    ) -> HttpResponse:
        reply = await self.call_replica(request, target, method, suffix, body)
        return reply_response(reply)

    # ---- routes -------------------------------------------------------------------------------
    async def live(self, request: HttpRequest, params: Params) -> HttpResponse:
        return json_response({"live": self._handler.live()})

    async def ready(self, request: HttpRequest, params: Params) -> HttpResponse:
        self._handler.check_ready()
        return json_response({"ready": True})

    async def server_metadata(self, request: HttpRequest, params: Params) -> HttpResponse:
        meta = self._handler.server_metadata()
        return json_response(
            {"name": meta.name, "version": meta.version, "extensions": list(meta.extensions)}
        )

    async def model_metadata(self, request: HttpRequest, params: Params) -> HttpResponse:
        return await self.model_metadata_of(request, self._model_name(request, params), params.get("version"))

    async def model_metadata_of(self, request: HttpRequest, name: str, version: str | None) -> HttpResponse:
        with log_scope(model=name):
            target = await self._handler.wait_ready_target(name, version)
            return await self._forward(request, target, "GET", "", None)

    async def model_ready(self, request: HttpRequest, params: Params) -> HttpResponse:
        return self.model_ready_of(self._model_name(request, params), params.get("version"))

    def model_ready_of(self, name: str, version: str | None) -> HttpResponse:
        target = self._handler.ready_target(name, version)
        return json_response({"name": target.model, "ready": True})

    async def list_models(self, request: HttpRequest, params: Params) -> HttpResponse:
        return json_response({"models": [m.to_json() for m in list_models(self._routes)]})

    async def infer(self, request: HttpRequest, params: Params) -> HttpResponse:
        return await self.infer_for(request, Inbound(params["model"], request.headers, params.get("version")))

    async def infer_for(self, request: HttpRequest, inbound: Inbound) -> HttpResponse:
        """A V2 infer of whatever ``inbound`` names (a model, pipeline, graph or experiment)."""
        plan = await self.plan(request, inbound)
        if plan.flow is not None:
            return await self._flow_infer(request, *plan.flow, mirror=plan.mirror)
        name = plan.name
        version = inbound.version
        with log_scope(model=name):
            self._handler.check_known(name, version)
            body = request.body
            json_length = binary_tensors.header_length(
                request.headers.get(binary_tensors.HEADER_LENGTH), len(body)
            )
            parsed = validate_infer_json(body, json_length)
            binary_outputs = binary_tensors.binary_output_choice(parsed)
            if json_length is None and binary_outputs is None:
                # Plain JSON, the common case: the body goes to the replica as it came. The
                # parsed copy is dropped before a hold, so a held request holds its body once.
                del parsed
                # Held (bounded) while the model has no ready replica: a bad body is refused first.
                target = await self.target(request, name, version)
                if plan.mirror is not None and self._mirror is not None:
                    self.send_mirror(request, plan.mirror, body)
                return reply_response(await self.call_replica(request, target, "POST", "/infer", body))
            target = await self.target(request, name, version)
            binary = BinaryRequest(request, parsed, json_length, binary_outputs)
            if plan.mirror is not None and self._mirror is not None:
                self.send_mirror(request, plan.mirror, binary.translated())
            return await self._infer_binary(request, target, binary)

    async def pipeline_infer(self, request: HttpRequest, params: Params) -> HttpResponse:
        return await self._flow_infer(
            request, PIPELINE, self._planner.flow_name(params["pipeline"], request.headers)
        )

    async def graph_infer(self, request: HttpRequest, params: Params) -> HttpResponse:
        return await self._flow_infer(
            request, GRAPH, self._planner.flow_name(params["graph"], request.headers)
        )

    async def _flow_infer(
        self, request: HttpRequest, kind: str, name: str, mirror: str | None = None
    ) -> HttpResponse:
        """A pipeline's (V2 request) or an inference graph's (any JSON) synchronous answer."""
        if self._dataflow is None:
            raise NotFoundError(f"{kind} {name} not found: this gateway serves models only")
        label = f"{name}.{kind}"
        request.state[METRIC_MODEL] = label if self._dataflow.knows(kind, name) else UNKNOWN_MODEL
        with log_scope(model=label):
            self._dataflow.check_known(kind, name)
            if request.headers.get(binary_tensors.HEADER_LENGTH) is not None:
                raise InvalidError(
                    f"{kind} {name}: the binary tensor extension is not supported for {kind}s; send JSON tensors",
                    field=binary_tensors.HEADER_LENGTH,
                )
            if kind == PIPELINE:
                validate_infer_json(request.body, None)
            else:
                load_json_object(request.body)
            self.send_flow_mirror(mirror, request.body)
            answer = await self._dataflow.call(kind, name, request.body)
            return HttpResponse(answer.status, answer.body, {"content-type": "application/json"})

    def send_flow_mirror(self, mirror: str | None, body: bytes) -> None:
        """A copy of a pipeline request to the experiment's mirror pipeline (answer dropped)."""
        mirrored = flow_of(mirror) if mirror is not None else None
        if mirrored is None or self._mirror is None or self._dataflow is None:
            return
        dataflow = self._dataflow
        self._mirror.send_call(mirror or "", lambda: dataflow.call(*mirrored, body))

    def send_mirror(self, request: HttpRequest, mirror: str, body: bytes) -> None:
        """A copy of the request to ``mirror``; its answer is dropped (mirroring.py)."""
        assert self._mirror is not None
        self._mirror.send(mirror, lambda to: self.call_replica(request, to, "POST", "/infer", body))

    async def _infer_binary(
        self, request: HttpRequest, target: Target, binary: BinaryRequest
    ) -> HttpResponse:
        """A request using the binary tensor extension: passed through as it is to replicas
        whose server declares the extension, translated to and from JSON for the others."""
        path = f"/v2/models/{quote(target.server_model_name, safe='')}/infer"
        forwarded = forwarded_headers(request.headers)
        translated_reply = False

        async def call(endpoint: RouteEndpoint) -> HttpReply:
            nonlocal translated_reply
            trace.get_current_span().set_attribute("modelplane.replica", endpoint.replica)
            if await self._extensions.supports(endpoint, BINARY_TENSOR_DATA):
                headers, body = binary.as_sent(forwarded)
                translated_reply = False
            else:
                headers, body = forwarded, binary.translated()
                translated_reply = True
            reply = await self._upstream.request(
                "POST", endpoint, path, headers=headers, body=body, timeout=target.timeout_seconds
            )
            return checked_reply(endpoint, target.server_model_name, reply)

        reply = await self._handler.forward(target, call)
        if not translated_reply or binary.outputs is None or reply.status != HTTPStatus.OK:
            return reply_response(reply)
        encoded = binary_tensors.encode_outputs(orjson.loads(reply.body), binary.outputs)
        if encoded is None:
            return reply_response(reply)
        payload, header_length = encoded
        return HttpResponse(
            200,
            payload,
            {"content-type": binary_tensors.BINARY_CONTENT_TYPE, _HEADER_LENGTH: str(header_length)},
        )

    async def _server_metadata_of(self, endpoint: RouteEndpoint) -> tuple[int, bytes]:
        """``GET /v2`` on one replica (ReplicaExtensions asks it)."""
        reply = await self._upstream.request("GET", endpoint, "/v2", headers={}, timeout=_METADATA_TIMEOUT)
        return reply.status, reply.body

    async def metrics(self, request: HttpRequest, params: Params) -> HttpResponse:
        return HttpResponse(200, self._metrics.render(), {"content-type": self._metrics.content_type})
