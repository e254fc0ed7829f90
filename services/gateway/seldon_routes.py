"""Seldon Core v1's REST paths on the gateway: translate, plan, call; no logic of their own.

Routes (registered into the REST adapter's router, so auth, CORS, tracing, request ids and
metrics are the same as for every other route):

- ``POST /api/v1.0/predictions`` (the deployment named by the ``seldon-model`` header, Seldon
  v2's, in the ``seldon-namespace`` header's namespace, default ``default``), ``POST
  /seldon/<namespace>/<name>/api/v1.0/predictions`` (Seldon v1's ingress path) and ``POST
  /seldon/<name>/api/v1.0/predictions`` (``SeldonClient`` without a namespace): the Seldon
  protocol (seldon_protocol.py), errors in Seldon's shape, metrics under the ``seldon`` label.
- ``/seldon/<namespace>/<name>/v2/models/<any>/infer``, ``.../ready``, ``.../v2/models/<any>``
  (metadata) and ``/seldon/<namespace>/<name>/v1/models/<any>:predict`` (and ``GET .../v1/models/
  <any>``): a Seldon v1 deployment serves one graph, and under protocol v2 / tensorflow the inner
  name is its root node's, so these go to ``<name>`` whatever ``<any>`` is; they answer as the
  gateway's own V2 and KServe V1 routes do.

``<name>`` is resolved by ``RequestPlanner.deployment`` (a model, else a pipeline; experiments
whose default it is split it) and then planned like every request; the path names the
deployment, so a ``seldon-model`` header does not override it.
"""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Final

import orjson

from modelplane.libs.errors import InvalidError, ModelplaneError, NotFoundError, RetryableError
from modelplane.libs.http1.messages import HttpRequest, HttpResponse
from modelplane.libs.http1.router import Params, Router
from modelplane.libs.resources.importers.base import DEFAULT_NAMESPACE
from modelplane.services.gateway import seldon_protocol
from modelplane.services.gateway.dataflow import flow_of
from modelplane.services.gateway.kserve_v1_routes import RowProtocols
from modelplane.services.gateway.planner import (
    SELDON_MODEL_HEADER,
    SELDON_NAMESPACE_HEADER,
    Inbound,
    RequestPlanner,
)
from modelplane.services.gateway.rest import RestAdapter, RestRoute, json_response

PROTOCOL: Final = "seldon"
PREDICTIONS: Final = "/api/v1.0/predictions"
_DEPLOYMENT: Final = "/seldon/{namespace}/{deployment}"


def error_response(exc: ModelplaneError) -> HttpResponse:
    """An error in Seldon's shape, with ``Retry-After`` for retryable ones."""
    headers: dict[str, str] = {}
    if isinstance(exc, RetryableError):
        headers["retry-after"] = str(max(1, math.ceil(exc.delay)))
    return json_response(seldon_protocol.error_body(exc.http_status, str(exc)), exc.http_status, headers)


class SeldonAdapter:
    """Seldon Core v1's paths; the REST adapter does the calling (rest.py)."""

    def __init__(self, rest: RestAdapter, rows: RowProtocols, planner: RequestPlanner) -> None:
        self._rest = rest
        self._rows = rows
        self._planner = planner

    def register(self, router: Router[RestRoute]) -> None:
        seldon = [
            ("POST", PREDICTIONS, self.predictions),
            ("POST", _DEPLOYMENT + PREDICTIONS, self.predictions),
            ("POST", "/seldon/{deployment}" + PREDICTIONS, self.predictions),
        ]
        for method, template, endpoint in seldon:
            router.add(method, template, RestRoute(endpoint, errors=error_response, protocol=PROTOCOL))
        for method, template, endpoint in (
            ("POST", _DEPLOYMENT + "/v2/models/{model}/infer", self.v2_infer),
            ("GET", _DEPLOYMENT + "/v2/models/{model}/ready", self.v2_ready),
            ("GET", _DEPLOYMENT + "/v2/models/{model}", self.v2_metadata),
            ("POST", _DEPLOYMENT + "/v1/models/{model}:predict", self.v1_predict),
            ("GET", _DEPLOYMENT + "/v1/models/{model}", self.v1_ready),
        ):
            router.add(method, template, RestRoute(endpoint))

    def _deployment(self, request: HttpRequest, params: Params) -> Inbound:
        """The request's deployment (path, else headers) resolved to a name to plan."""
        headers = request.headers
        name = params.get("deployment")
        if name is not None:
            namespace = params.get("namespace", DEFAULT_NAMESPACE)
        else:
            name = (headers.get(SELDON_MODEL_HEADER) or "").strip()
            if not name:
                raise InvalidError(
                    f"is required on {PREDICTIONS}: it names the deployment "
                    "(or call /seldon/<namespace>/<name>/api/v1.0/predictions)",
                    field=SELDON_MODEL_HEADER,
                )
            namespace = (headers.get(SELDON_NAMESPACE_HEADER) or "").strip() or DEFAULT_NAMESPACE
        return Inbound(self._planner.deployment(namespace, name), headers, pinned=True)

    # ---- the Seldon protocol ------------------------------------------------------------------
    async def predictions(self, request: HttpRequest, params: Params) -> HttpResponse:
        plan = await self._rest.plan_known(request, self._deployment(request, params))
        message = seldon_protocol.parse_message(
            seldon_protocol.message_json(request.body, request.headers.get("content-type"), request.query)
        )
        puid = seldon_protocol.puid_of(message, request.headers)
        reply = await self._rows.tensor_infer(request, plan, message.v2_request)
        headers = {seldon_protocol.PUID_HEADER: puid}
        if reply.status != HTTPStatus.OK:
            info = seldon_protocol.replica_error_text(reply.body)
            return json_response(seldon_protocol.error_body(reply.status, info), reply.status, headers)
        answer = seldon_protocol.seldon_answer(message, orjson.loads(reply.body), puid)
        return json_response(answer, headers=headers)

    # ---- V2 and KServe V1 under the deployment's path -----------------------------------------
    async def v2_infer(self, request: HttpRequest, params: Params) -> HttpResponse:
        return await self._rest.infer_for(request, self._deployment(request, params))

    def _model(self, request: HttpRequest, params: Params) -> str:
        """The deployment's model, for the calls that only models answer (ready, metadata)."""
        name = self._deployment(request, params).requested
        flow = flow_of(name)
        if flow is not None:
            raise NotFoundError(
                f"deployment {params['deployment']} is a {flow[0]}: readiness and metadata are "
                "served for models; send inference requests to it"
            )
        return name

    async def v2_ready(self, request: HttpRequest, params: Params) -> HttpResponse:
        return self._rest.model_ready_of(self._model(request, params), None)

    async def v2_metadata(self, request: HttpRequest, params: Params) -> HttpResponse:
        return await self._rest.model_metadata_of(request, self._model(request, params), None)

    async def v1_predict(self, request: HttpRequest, params: Params) -> HttpResponse:
        return await self._rows.v1_predict_for(request, self._deployment(request, params))

    async def v1_ready(self, request: HttpRequest, params: Params) -> HttpResponse:
        return self._rows.v1_ready_of(self._model(request, params))
