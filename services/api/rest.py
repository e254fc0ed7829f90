"""The REST adapter (aiohttp) over the same handler as gRPC: translate, call, map errors.

Routes: POST /v1/apply (a JSON manifest, a JSON list of them, or YAML documents when the
Content-Type is application/yaml); GET /v1/{kind}; GET|DELETE /v1/{kind}/{name};
GET /v1/{kind}/{name}/status; POST /v1/{kind}/{name}/scale;
GET /v1/servers/{name}/replicas;
GET /v1/pipelines/{name}/inspect[?step=&request_id=]; GET /v1/health.
``kind`` is models | servers | serverconfigs | experiments | pipelines | inferencegraphs (or
any spelling ``handler.parse_kind`` accepts). Errors are ``{"error": "<field>: <reason>"}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import yaml
from aiohttp import web
from google.protobuf import json_format

from modelplane.libs.errors import InvalidError, ModelplaneError
from modelplane.libs.resources.manifests import to_manifest
from modelplane.libs.resources.types import Resource
from modelplane.services.api.handler import ControlHandler, parse_kind

log = structlog.get_logger(__name__)

HANDLER_KEY: web.AppKey[ControlHandler] = web.AppKey("handler", ControlHandler)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ModelplaneError as exc:
        return _error(exc.http_status, str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason)
        raise
    except Exception as exc:
        log.exception("rest_internal_error", path=request.path, error=repr(exc))
        return _error(500, "internal error (see the api logs)")


def _handler(request: web.Request) -> ControlHandler:
    return request.app[HANDLER_KEY]


def _status_json(message: Any) -> dict[str, Any]:
    return dict(json_format.MessageToDict(message, preserving_proto_field_name=False))


async def _read_documents(request: web.Request) -> list[Any]:
    charset = request.charset or "utf-8"
    try:
        body = (await request.read()).decode(charset)
    except (UnicodeDecodeError, LookupError) as exc:
        raise InvalidError(f"the body is not {charset} text", field="body") from exc
    if request.content_type in YAML_TYPES:
        try:
            docs = [doc for doc in yaml.safe_load_all(body) if doc is not None]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise InvalidError(f"invalid YAML{where}: {getattr(exc, 'problem', exc)}", field="body") from exc
    else:
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError as exc:
            raise InvalidError(f"invalid JSON at line {exc.lineno}: {exc.msg}", field="body") from exc
        docs = parsed if isinstance(parsed, list) else [parsed]
    if not docs:
        raise InvalidError("no manifest in the request", field="body")
    return docs


def _applied(resource: Resource, outcome: str) -> dict[str, Any]:
    return {
        "kind": resource.kind,
        "name": resource.meta.name,
        "outcome": outcome,
        "resource": to_manifest(resource),
    }


async def apply(request: web.Request) -> web.Response:
    """Apply every manifest of the body in order; each result says created/configured/unchanged."""
    handler = _handler(request)
    results = []
    for doc in await _read_documents(request):
        resource, outcome = await handler.apply_manifest(doc)
        results.append(_applied(resource, outcome))
    return web.json_response({"items": results})


async def list_resources(request: web.Request) -> web.Response:
    resources = await _handler(request).list(parse_kind(request.match_info["kind"]))
    return web.json_response({"items": [to_manifest(r) for r in resources]})


async def get_resource(request: web.Request) -> web.Response:
    kind = parse_kind(request.match_info["kind"])
    return web.json_response(to_manifest(await _handler(request).get(kind, request.match_info["name"])))


async def delete_resource(request: web.Request) -> web.Response:
    kind = parse_kind(request.match_info["kind"])
    name = request.match_info["name"]
    outcome = await _handler(request).delete(kind, name)
    return web.json_response({"kind": kind, "name": name, "outcome": outcome})


async def get_status(request: web.Request) -> web.Response:
    kind = parse_kind(request.match_info["kind"])
    status = await _handler(request).get_status(kind, request.match_info["name"])
    return web.json_response(_status_json(status))


async def scale_resource(request: web.Request) -> web.Response:
    """``{"replicas": N, "reason": "..."}``: set only the replicas (kubectl scale)."""
    kind = parse_kind(request.match_info["kind"])
    try:
        body = await request.json()
    except ValueError as exc:
        raise InvalidError(f"the body is not JSON: {exc}", field="body") from exc
    replicas = body.get("replicas") if isinstance(body, dict) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise InvalidError("must be a whole number", field="replicas")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise InvalidError("must be a string", field="reason")
    resource, outcome = await _handler(request).scale(kind, request.match_info["name"], replicas, reason)
    return web.json_response(_applied(resource, outcome))


async def server_replicas(request: web.Request) -> web.Response:
    replicas = await _handler(request).server_replicas(request.match_info["name"])
    return web.json_response({"items": [_status_json(r) for r in replicas]})


async def inspect_pipeline(request: web.Request) -> web.Response:
    found = await _handler(request).inspect_pipeline(
        request.match_info["name"], request.query.get("step", ""), request.query.get("request_id", "")
    )
    return web.json_response(
        {
            "request_id": found.request_id,
            "records": [
                {"step": r.step, "port": r.port, "time": r.time, "json": r.json} for r in found.records
            ],
        }
    )


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(handler: ControlHandler) -> web.Application:
    app = web.Application(middlewares=[_errors])
    app[HANDLER_KEY] = handler
    app.router.add_post("/v1/apply", apply)
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/servers/{name}/replicas", server_replicas)
    app.router.add_get("/v1/pipelines/{name}/inspect", inspect_pipeline)
    app.router.add_get("/v1/{kind}", list_resources)
    app.router.add_get("/v1/{kind}/{name}", get_resource)
    app.router.add_delete("/v1/{kind}/{name}", delete_resource)
    app.router.add_get("/v1/{kind}/{name}/status", get_status)
    app.router.add_post("/v1/{kind}/{name}/scale", scale_resource)
    return app
