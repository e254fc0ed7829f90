"""KServe V1 on the gateway, and the V2 call every row protocol makes (KServe V1, Seldon).

``GET /v1/models/{m}`` and ``POST /v1/models/{m}:predict`` are converted to V2 calls
(kserve_v1.py): the predict input is named after the model's metadata (asked once per server
model and remembered, bounded) and planned like a V2 infer (experiments, pipelines, mirrors),
over the REST adapter's machinery (rest.py), whose router and error handling they share.
``tensor_infer`` is the one V2 call of a translated request; Seldon's routes use it too.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

import orjson

from modelplane.libs.dataplane.handler import Target
from modelplane.libs.dataplane.upstream_http import HttpReply
from modelplane.libs.errors import RetryableError
from modelplane.libs.http1.messages import HttpRequest, HttpResponse
from modelplane.libs.http1.router import Params, Router
from modelplane.libs.logs import log_scope
from modelplane.services.gateway import kserve_v1
from modelplane.services.gateway.planner import Inbound, Plan
from modelplane.services.gateway.rest import JSON, RestAdapter, RestRoute, json_response, reply_response

# Server model names whose V1 input name is remembered (bounded; cleared when full).
V1_INPUT_NAME_CACHE_SIZE: Final = 1024


class RowProtocols:
    """KServe V1's routes, and ``tensor_infer`` for every protocol of rows."""

    def __init__(self, rest: RestAdapter) -> None:
        self._rest = rest
        self._input_names: dict[str, str] = {}

    def register(self, router: Router[RestRoute]) -> None:
        router.add("GET", "/v1/models/{model}", RestRoute(self.v1_model_ready))
        router.add("POST", "/v1/models/{model}:predict", RestRoute(self.v1_predict, held=True))

    async def v1_model_ready(self, request: HttpRequest, params: Params) -> HttpResponse:
        return self.v1_ready_of(self._rest.planner.model_name(params["model"], request.headers))

    def v1_ready_of(self, name: str) -> HttpResponse:
        try:
            ready = bool(self._rest.planner.handler.resolve(name).endpoints)
        except RetryableError:  # known, but no version is available yet
            ready = False
        return json_response({"name": name, "ready": ready})

    async def v1_predict(self, request: HttpRequest, params: Params) -> HttpResponse:
        return await self.v1_predict_for(request, Inbound(params["model"], request.headers))

    async def v1_predict_for(self, request: HttpRequest, inbound: Inbound) -> HttpResponse:
        """KServe V1 predict as a V2 infer; experiments, pipelines and mirrors as for V2."""
        plan = await self._rest.plan_known(request, inbound)
        tensor = kserve_v1.parse_instances(request.body)
        reply = await self.tensor_infer(request, plan, tensor.v2_request)
        if reply.status != HTTPStatus.OK:
            return reply_response(reply)
        return json_response(kserve_v1.predictions(orjson.loads(reply.body)))

    async def tensor_infer(
        self, request: HttpRequest, plan: Plan, v2_request: Callable[[str], dict[str, Any]]
    ) -> HttpReply:
        """A V2 infer built by a row protocol's translation (KServe V1, Seldon) for a known
        ``plan``: sent to the model (its only input named after its metadata) or to the
        pipeline/graph (input ``input-0``: a flow has no metadata), copied to the mirror."""
        if plan.flow is not None and self._rest.planner.dataflow is not None:
            body = orjson.dumps(v2_request(kserve_v1.DEFAULT_INPUT_NAME))
            self._rest.send_flow_mirror(plan.mirror, body)
            answer = await self._rest.planner.dataflow.call(*plan.flow, body)
            return HttpReply(answer.status, answer.body, JSON)
        with log_scope(model=plan.name):
            target = await self._rest.target(request, plan.name, None)
            body = orjson.dumps(v2_request(await self._input_name(request, target)))
            if plan.mirror is not None and self._rest.mirror is not None:
                self._rest.send_mirror(request, plan.mirror, body)
            return await self._rest.call_replica(request, target, "POST", "/infer", body)

    async def _input_name(self, request: HttpRequest, target: Target) -> str:
        """The model's only input name per its V2 metadata (asked once per server model)."""
        cached = self._input_names.get(target.server_model_name)
        if cached is not None:
            return cached
        reply = await self._rest.call_replica(request, target, "GET", "", None)
        if reply.status != HTTPStatus.OK:
            # The infer call that follows reports what is wrong with the model.
            return kserve_v1.DEFAULT_INPUT_NAME
        try:
            name = kserve_v1.input_name(orjson.loads(reply.body))
        except orjson.JSONDecodeError:
            name = kserve_v1.DEFAULT_INPUT_NAME
        if len(self._input_names) >= V1_INPUT_NAME_CACHE_SIZE:
            self._input_names.clear()
        self._input_names[target.server_model_name] = name
        return name
