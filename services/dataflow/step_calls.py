"""How a worker calls a step's model without crossing the gateway process.

Design: the worker holds its own copy of the data plane (libs/dataplane: route table watched from
KV, balancer, in-flight counts, held requests, retries on another replica, reloads of evicted
models, the pooled HTTP client), so a step call is forwarded by the same code a client's request
is forwarded by in the gateway, one network hop shorter. The worker also publishes load signals
for its calls, under its own instance id, so the autoscaler sees pipeline traffic as it sees
any gateway's.

Failures become ``StepCallError`` with the status the gateway would have answered (404 unknown
model, 503 no replica after the hold, 502 unreachable, 504 time-out, or the model's own error).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from opentelemetry import trace

from modelplane.libs.dataplane.handler import GatewayHandler
from modelplane.libs.dataplane.upstream_http import HttpReply, HttpUpstream, checked_reply
from modelplane.libs.errors import ModelplaneError
from modelplane.libs.routes import RouteEndpoint
from modelplane.libs.telemetry import inject_context, server_span
from modelplane.services.dataflow.errors import StepCallError
from modelplane.services.dataflow.gateway_client import error_text

_JSON = "application/json"


class DirectStepCalls:
    """The StepCaller of a worker with ``step_calls`` = direct."""

    def __init__(self, handler: GatewayHandler, upstream: HttpUpstream) -> None:
        self._handler = handler
        self._upstream = upstream
        self._tracer = trace.get_tracer("modelplane.dataflow")

    async def infer(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        # One span per step call, a child of the request's (the run's tasks carry its context),
        # as the gateway makes one per forwarded request.
        parent: dict[str, str] = {}
        inject_context(parent)
        with server_span(self._tracer, f"step {model}", parent):
            return await self._infer(model, request)

    async def _infer(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        body = orjson.dumps(request)
        headers = {"content-type": _JSON, "accept": _JSON}
        inject_context(headers)
        try:
            target = await self._handler.wait_ready_target(model)
            path = f"/v2/models/{quote(target.server_model_name, safe='')}/infer"

            async def call(endpoint: RouteEndpoint) -> HttpReply:
                reply = await self._upstream.request(
                    "POST", endpoint, path, headers=headers, body=body, timeout=target.timeout_seconds
                )
                return checked_reply(endpoint, target.server_model_name, reply)

            reply = await self._handler.forward(target, call)
        except ModelplaneError as exc:
            raise StepCallError(model, exc.http_status, exc.message) from exc
        if reply.status != 200:
            raise StepCallError(model, reply.status, error_text(reply.body))
        try:
            answer = orjson.loads(reply.body)
        except orjson.JSONDecodeError as exc:
            raise StepCallError(model, 502, f"the model answered non-JSON ({exc})") from exc
        if not isinstance(answer, dict):
            raise StepCallError(model, 502, "the model's answer is not a JSON object")
        return answer
