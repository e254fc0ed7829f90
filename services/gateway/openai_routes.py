"""OpenAI-compatible REST routes, as KubeAI serves them: translate, call the handler.

Routes, each under ``/openai/v1`` and under ``/v1``: ``POST .../chat/completions``,
``.../completions``, ``.../embeddings`` and ``GET .../models``. (``GET /v1/models/{m}`` stays
KServe V1: only the list without a name is OpenAI's.)

A request names its model in the JSON body's ``model``. ``<model>_<adapter>`` asks for LoRA
adapter ``<adapter>`` of ``<model>`` when ``<model>_<adapter>`` is not itself a known model
(KubeAI's convention; adapter names cannot hold ``_``, so the split is at the last one). The
request is held like a V2 infer while the model has no ready replica, then forwarded to one
replica's own OpenAI-compatible server (``http://<replica>/v1/...``, the vLLM layout) with
``model`` rewritten to the name the replica knows: the server-side model name, or the adapter's
own name (vLLM serves each LoRA adapter under its name). The replica's status and body come back
as they are; an event stream (``"stream": true``) is relayed chunk by chunk as it arrives, never
buffered (a ``StreamingResponse`` that owns the replica's open answer), and the call counts as in
flight until its last chunk.

Balancing hint (``RequestHint``): the prompt prefix is the first user message of a chat, the
prompt (or its first element) of a completion, the input (or its first element) of an
embedding; the adapter, when one is asked, limits the candidates to replicas serving it.

Errors have OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, so OpenAI
clients raise their usual exceptions: an unknown model (or adapter) is 404 ``model_not_found``,
a bad body 400, no ready replica 503 with ``Retry-After``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson
import structlog
from opentelemetry import trace

from modelplane.libs.dataplane.balancers import RequestHint
from modelplane.libs.dataplane.handler import ModelNotResidentError, Target
from modelplane.libs.dataplane.upstream_http import (
    HttpStream,
    HttpUpstream,
    forwarded_headers,
)
from modelplane.libs.errors import (
    DeadlineError,
    InvalidError,
    ModelplaneError,
    NotFoundError,
    RetryableError,
)
from modelplane.libs.http1.messages import HttpRequest, HttpResponse, Response, StreamingResponse
from modelplane.libs.http1.router import Params, Router
from modelplane.libs.logs import log_scope
from modelplane.libs.routes import RouteEndpoint
from modelplane.services.gateway.held_bytes import RESERVATION, Reservation
from modelplane.services.gateway.metrics import UNKNOWN_MODEL
from modelplane.services.gateway.mirroring import Mirror
from modelplane.services.gateway.planner import Inbound, RequestPlanner
from modelplane.services.gateway.rest import METRIC_MODEL, ROUTE_STATE, RestRoute, json_response
from modelplane.services.gateway.validation import load_json_object

log = structlog.get_logger(__name__)

# Both prefixes serve the same routes (KubeAI uses /openai/v1; OpenAI clients default to /v1).
PATH_PREFIXES = ("/openai/v1", "/v1")
PROTOCOL = "openai"
OWNED_BY = "modelplane"
EVENT_STREAM = "text/event-stream"
# The separator of ``<model>_<adapter>``.
ADAPTER_SEPARATOR = "_"


# ---- request parsing ----------------------------------------------------------------------------
def _text_of(value: Any) -> str:
    """A prompt-like field as text: a string, or the first element of a list of strings."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return ""


def chat_prefix(body: dict[str, Any]) -> str:
    """The first user message's text (string content, or its text parts joined)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in messages:
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(
                str(part.get("text", ""))
                for part in content
                if isinstance(part, dict) and part.get("type") == "text"
            )
        return ""
    return ""


def prompt_prefix(body: dict[str, Any]) -> str:
    return _text_of(body.get("prompt"))


def input_prefix(body: dict[str, Any]) -> str:
    return _text_of(body.get("input"))


@dataclass(frozen=True, slots=True)
class OpenAIOperation:
    """One forwarded OpenAI call: its path (the same on the gateway and on the replica)."""

    path: str
    prefix_of: Callable[[dict[str, Any]], str]


OPERATIONS = (
    OpenAIOperation("/chat/completions", chat_prefix),
    OpenAIOperation("/completions", prompt_prefix),
    OpenAIOperation("/embeddings", input_prefix),
)
# Where replicas serve the OpenAI API (vLLM, KubeAI's engines).
REPLICA_PREFIX = "/v1"


def parse_body(raw: bytes) -> tuple[dict[str, Any], str]:
    """The JSON object of a request and its ``model``; InvalidError naming what is wrong."""
    body = load_json_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidError("is required (a non-empty string)", field="model")
    return body, model.strip()


def split_adapter(name: str, knows: Callable[[str], bool]) -> tuple[str, str]:
    """``(model, adapter)`` for the requested name; NotFoundError if no model matches."""
    if knows(name):
        return name, ""
    model, separator, adapter = name.rpartition(ADAPTER_SEPARATOR)
    if separator and model and adapter and knows(model):
        return model, adapter
    raise NotFoundError(f"model {name} not found", field="model")


# ---- responses ----------------------------------------------------------------------------------
def openai_error(
    status: int, message: str, kind: str, *, param: str | None = None, code: str | None = None
) -> HttpResponse:
    return json_response({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)


def error_response(exc: ModelplaneError) -> HttpResponse:
    """``exc`` in OpenAI's error shape, with Retry-After for retryable errors."""
    if isinstance(exc, NotFoundError):
        response = openai_error(
            exc.http_status, exc.message, "invalid_request_error", param="model", code="model_not_found"
        )
    elif isinstance(exc, InvalidError):
        response = openai_error(exc.http_status, str(exc), "invalid_request_error", param=exc.field)
    elif isinstance(exc, DeadlineError):
        response = openai_error(exc.http_status, exc.message, "server_error", code="timeout")
    elif isinstance(exc, RetryableError):
        response = openai_error(
            exc.http_status, exc.message, "server_error", param="model", code="model_not_ready"
        )
    else:
        response = openai_error(exc.http_status, exc.message, "server_error")
    if isinstance(exc, RetryableError):
        response.headers["retry-after"] = str(max(1, math.ceil(exc.delay)))
    return response


async def _buffered(reply: HttpStream) -> HttpResponse:
    """A replica's whole answer, passed on as it is."""
    body = await reply.read()
    return HttpResponse(reply.status, body, {"content-type": reply.content_type})


class OpenAIAdapter:
    """The OpenAI-compatible routes of the gateway (registered on the REST router)."""

    def __init__(self, planner: RequestPlanner, upstream: HttpUpstream, mirror: Mirror | None = None) -> None:
        # Auth, experiments and the bounded hold are decided there (planner.py), as for V2.
        self._planner = planner
        self._handler = planner.handler
        self._upstream = upstream
        self._mirror = mirror

    def register(self, router: Router[RestRoute]) -> None:
        """Add the routes under every prefix of ``PATH_PREFIXES`` to ``router``."""
        for prefix in PATH_PREFIXES:
            for operation in OPERATIONS:
                router.add("POST", prefix + operation.path, self._route(self._operation(operation)))
            router.add("GET", prefix + "/models", self._route(self.list_models))

    @staticmethod
    def _route(endpoint: Callable[[HttpRequest, Params], Any]) -> RestRoute:
        """Errors in OpenAI's shape, counted under the ``openai`` protocol label."""
        return RestRoute(endpoint, errors=error_response, protocol=PROTOCOL)

    # ---- routes -------------------------------------------------------------------------------
    def _operation(self, operation: OpenAIOperation) -> Callable[[HttpRequest, Params], Any]:
        async def relay(request: HttpRequest, params: Params) -> Response:
            body, name = parse_body(request.body)
            request.state[METRIC_MODEL] = UNKNOWN_MODEL
            # Experiments and mirrors apply as for V2: the body's model is the requested name.
            plan = await self._planner.plan(Inbound(name, request.headers))
            if plan.route_header is not None:
                request.state[ROUTE_STATE] = plan.route_header
            model, adapter = split_adapter(plan.name, self._handler.knows)
            request.state[METRIC_MODEL] = model
            with log_scope(model=model, adapter=adapter or None):
                reserved = request.state.get(RESERVATION)
                target = await self._planner.target(
                    model, None, len(request.body), reserved if isinstance(reserved, Reservation) else None
                )
                if adapter and not any(adapter in e.adapters for e in target.endpoints):
                    raise NotFoundError(f"model {model} has no adapter {adapter}", field="model")
                path = REPLICA_PREFIX + operation.path
                if plan.mirror is not None and self._mirror is not None:
                    self._send_mirror(request, plan.mirror, path, body)
                body["model"] = adapter or target.server_model_name
                hint = RequestHint(prefix=operation.prefix_of(body), adapter=adapter)
                return await self._relay(request, target, path, body, hint)

        return relay

    def _send_mirror(self, request: HttpRequest, mirror: str, path: str, body: dict[str, Any]) -> None:
        """A copy of the request to the experiment's mirror model; its answer is read and dropped."""
        assert self._mirror is not None
        headers = forwarded_headers(request.headers)
        copy = dict(body)

        async def send(to: Target) -> object:
            copy["model"] = to.server_model_name
            payload = orjson.dumps(copy)
            return await self._handler.forward(
                to,
                lambda endpoint: self._upstream.request(
                    "POST", endpoint, path, headers=headers, body=payload, timeout=to.timeout_seconds
                ),
            )

        self._mirror.send(mirror, send)

    async def _relay(
        self, request: HttpRequest, target: Target, path: str, body: dict[str, Any], hint: RequestHint
    ) -> Response:
        headers = forwarded_headers(request.headers)
        payload = orjson.dumps(body)

        async def call(endpoint: RouteEndpoint) -> Response:
            trace.get_current_span().set_attribute("modelplane.replica", endpoint.replica)
            async with contextlib.AsyncExitStack() as open_answer:
                reply = await open_answer.enter_async_context(
                    self._upstream.stream("POST", endpoint, path, headers=headers, body=payload)
                )
                if reply.status == HTTPStatus.NOT_FOUND:
                    # The replica lacks a model its route lists: maybe evicted (the handler reloads).
                    answer = await _buffered(reply)
                    raise ModelNotResidentError(
                        f"replica {endpoint.replica} has no model {body['model']}", lambda: answer
                    )
                if not reply.content_type.startswith(EVENT_STREAM):
                    return await _buffered(reply)
                # The stream outlives this call: its chunks are relayed after the handler returns,
                # so the open answer and an in-flight count move into the relay, which ends both.
                done = self._handler.hold_in_flight(target, endpoint)
                return self._pipe(request, reply, endpoint, open_answer.pop_all(), done)
            raise AssertionError("unreachable")  # pragma: no cover - the with block returns

        return await self._handler.forward(target, call, hint)

    def _pipe(
        self,
        request: HttpRequest,
        reply: HttpStream,
        endpoint: RouteEndpoint,
        open_answer: contextlib.AsyncExitStack,
        done: Callable[[], None],
    ) -> StreamingResponse:
        """Relay an event stream chunk by chunk; once started, failures can only end it."""

        async def relayed() -> AsyncIterator[bytes]:
            try:
                async for chunk in reply.chunks():
                    yield chunk
            except ModelplaneError as exc:
                # The status is sent: the client sees the stream end without its final event.
                log.warning("stream_broken", replica=endpoint.replica, error=str(exc))
            finally:
                done()
                await open_answer.aclose()

        headers = {"content-type": reply.content_type, "cache-control": "no-cache"}
        return StreamingResponse(reply.status, relayed(), headers)

    async def list_models(self, request: HttpRequest, params: Params) -> HttpResponse:
        """Every routable model, and each adapter its replicas serve as ``<model>_<adapter>``."""
        routes = self._handler.routes
        data: list[dict[str, Any]] = []
        for name in routes.models():
            route = routes.get(name)
            if route is None:  # pragma: no cover - models() and get() read the same dict
                continue
            # Routes carry no creation time; OpenAI's schema requires the field.
            data.append({"id": name, "object": "model", "created": 0, "owned_by": OWNED_BY})
            adapters = sorted({a for v in route.versions for e in v.endpoints for a in e.adapters})
            for adapter in adapters:
                full = f"{name}{ADAPTER_SEPARATOR}{adapter}"
                if routes.get(full) is None:  # a model of that name wins (see split_adapter)
                    data.append(
                        {"id": full, "object": "model", "created": 0, "owned_by": OWNED_BY, "parent": name}
                    )
        return json_response({"object": "list", "data": data})
