"""The REST adapter (aiohttp) over the same handler as gRPC: translate, call, map errors.

Routes: POST /v1/apply (a JSON manifest, a JSON list of them, or YAML documents when the
Content-Type is application/yaml); GET /v1/{kind}; GET|DELETE /v1/{kind}/{name};
GET /v1/{kind}/{name}/status; POST /v1/{kind}/{name}/scale;
GET /v1/servers/{name}/replicas;
GET /v1/pipelines/{name}/inspect[?step=&request_id=]; GET|POST /v1/tokens,
DELETE /v1/tokens/{name}; GET /v1/health.
``kind`` is models | servers | serverconfigs | experiments | pipelines | inferencegraphs, or a
foreign kind (inferenceservices, servingruntimes, clusterservingruntimes, trainedmodels,
seldondeployments; any spelling ``kinds.parse_any_kind`` accepts, ``?namespace=`` selects the
namespace of a foreign one). An apply of several documents is all or nothing. Errors are ``{"error": "<field>: <reason>"}``.

Browsers may send some requests to any address without asking first (a ``text/plain`` POST, a
form), so a web page must not be able to reach the api, authenticated or not. Middlewares, in
order: a request whose ``Origin`` is not the api's own is 403; every route but /v1/health needs
``Authorization: Bearer <token>`` (401 with ``WWW-Authenticate: Bearer``); a body must be
``application/json`` or ``application/yaml`` (415). No CORS header is ever sent, so a preflight
never succeeds. Bodies are capped (``client_max_size``, 413).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import yaml
from aiohttp import web
from google.protobuf import json_format

from modelplane.libs.auth.bearer import bearer_token
from modelplane.libs.auth.tokens import Principal
from modelplane.libs.errors import (
    InvalidError,
    ModelplaneError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from modelplane.libs.resources.importers.base import DEFAULT_NAMESPACE
from modelplane.libs.resources.manifests import to_manifest
from modelplane.libs.resources.types import Resource
from modelplane.services.api.foreign import ForeignEntry
from modelplane.services.api.handler import ControlHandler
from modelplane.services.api.kinds import is_native, parse_any_kind, parse_kind, service_name_of

log = structlog.get_logger(__name__)

HANDLER_KEY: web.AppKey[ControlHandler] = web.AppKey("handler", ControlHandler)
# The api's own origins; filled once the REST port is bound (the app is frozen by then, the set
# is not).
ORIGINS_KEY: web.AppKey[set[str]] = web.AppKey("origins", set)
_PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)
YAML_TYPES = ("application/yaml", "application/x-yaml")
BODY_TYPES = ("application/json", *YAML_TYPES)
# Routes anyone may call (a load balancer's or `up`'s health check).
_OPEN_PATHS = frozenset({"/v1/health"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UnauthenticatedError as exc:
        return _error(exc.http_status, str(exc), {"WWW-Authenticate": "Bearer"})
    except ModelplaneError as exc:
        return _error(exc.http_status, str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason)
        raise
    except Exception as exc:
        log.exception("rest_internal_error", path=request.path, error=repr(exc))
        return _error(500, "internal error (see the api logs)")


@web.middleware
async def _same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A browser's cross-origin request (any Origin but the api's own) is refused."""
    origin = request.headers.get("Origin")
    if origin is not None and origin not in request.app[ORIGINS_KEY]:
        raise PermissionDeniedError("cross-origin requests are refused", field="Origin")
    return await handler(request)


@web.middleware
async def _authenticated(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in _OPEN_PATHS:
        token = bearer_token(request.headers.get("Authorization"))
        request[_PRINCIPAL] = await _handler(request).authenticate(token)
    return await handler(request)


@web.middleware
async def _body_type(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bodies in JSON or YAML only: text/plain and forms are what pages may send unasked."""
    if (request.method == "POST" or request.body_exists) and request.content_type not in BODY_TYPES:
        raise web.HTTPUnsupportedMediaType(
            reason=f"Content-Type must be one of {', '.join(BODY_TYPES)}, not {request.content_type}"
        )
    return await handler(request)


def _handler(request: web.Request) -> ControlHandler:
    return request.app[HANDLER_KEY]


def _principal(request: web.Request) -> Principal:
    principal = request.get(_PRINCIPAL)
    assert isinstance(principal, Principal)  # set by _authenticated for every route but health
    return principal


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


def _applied(resource: Resource | ForeignEntry, outcome: str) -> dict[str, Any]:
    if isinstance(resource, ForeignEntry):
        return {
            "kind": resource.ref.kind,
            "name": resource.ref.name,
            "namespace": resource.ref.namespace,
            "outcome": outcome,
            "resource": dict(resource.manifest),
        }
    return {
        "kind": resource.kind,
        "name": resource.meta.name,
        "outcome": outcome,
        "resource": to_manifest(resource),
    }


async def apply(request: web.Request) -> web.Response:
    """Apply every manifest of the body in order; each result says created/configured/unchanged."""
    applied = await _handler(request).apply_manifests(_principal(request), await _read_documents(request))
    return web.json_response({"items": [_applied(resource, outcome) for resource, outcome in applied]})


async def list_resources(request: web.Request) -> web.Response:
    kind = parse_any_kind(request.match_info["kind"])
    if not is_native(kind):
        views = await _handler(request).list_foreign(_principal(request), kind)
        return web.json_response({"items": [v.manifest() for v in views]})
    resources = await _handler(request).list(_principal(request), parse_kind(kind))
    return web.json_response({"items": [to_manifest(r) for r in resources]})


def _namespace(request: web.Request) -> str:
    return request.query.get("namespace", "") or DEFAULT_NAMESPACE


def _native_name(request: web.Request, kind: str, name: str) -> str:
    """The service-wide name of a native resource named in ``?namespace=`` (default)."""
    return service_name_of(parse_kind(kind), name, _namespace(request))


async def get_resource(request: web.Request) -> web.Response:
    """A native resource's manifest; a foreign one's as applied, with its status."""
    kind = parse_any_kind(request.match_info["kind"])
    name = request.match_info["name"]
    if not is_native(kind):
        view = await _handler(request).get_foreign(_principal(request), kind, name, _namespace(request))
        return web.json_response(view.manifest())
    return web.json_response(
        to_manifest(
            await _handler(request).get(
                _principal(request), parse_kind(kind), _native_name(request, kind, name)
            )
        )
    )


async def delete_resource(request: web.Request) -> web.Response:
    kind = parse_any_kind(request.match_info["kind"])
    name = request.match_info["name"]
    if not is_native(kind):
        outcome = await _handler(request).delete_foreign(_principal(request), kind, name, _namespace(request))
    else:
        outcome = await _handler(request).delete(
            _principal(request), parse_kind(kind), _native_name(request, kind, name)
        )
    return web.json_response({"kind": kind, "name": name, "outcome": outcome})


async def get_status(request: web.Request) -> web.Response:
    """The native status message; a foreign kind's status in its own shape."""
    kind = parse_any_kind(request.match_info["kind"])
    name = request.match_info["name"]
    if not is_native(kind):
        view = await _handler(request).get_foreign(_principal(request), kind, name, _namespace(request))
        return web.json_response(dict(view.status))
    status = await _handler(request).get_status(
        _principal(request), parse_kind(kind), _native_name(request, kind, name)
    )
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
    resource, outcome = await _handler(request).scale(
        _principal(request), kind, _native_name(request, kind, request.match_info["name"]), replicas, reason
    )
    return web.json_response(_applied(resource, outcome))


async def server_replicas(request: web.Request) -> web.Response:
    name = _native_name(request, "Server", request.match_info["name"])
    replicas = await _handler(request).server_replicas(_principal(request), name)
    return web.json_response({"items": [_status_json(r) for r in replicas]})


async def inspect_pipeline(request: web.Request) -> web.Response:
    found = await _handler(request).inspect_pipeline(
        _principal(request),
        _native_name(request, "Pipeline", request.match_info["name"]),
        request.query.get("step", ""),
        request.query.get("request_id", ""),
    )
    return web.json_response(
        {
            "request_id": found.request_id,
            "records": [
                {"step": r.step, "port": r.port, "time": r.time, "json": r.json} for r in found.records
            ],
        }
    )


async def list_tokens(request: web.Request) -> web.Response:
    tokens = await _handler(request).list_tokens(_principal(request))
    return web.json_response(
        {"items": [{"name": t.name, "role": t.role, "created": t.created} for t in tokens]}
    )


async def create_token(request: web.Request) -> web.Response:
    """``{"role": "...", "name": "..."}`` -> the token, shown this once."""
    body = await _json_object(request)
    role, name = body.get("role"), body.get("name", "")
    if not isinstance(role, str):
        raise InvalidError("is required (admin, deployer, viewer or inference)", field="role")
    if not isinstance(name, str):
        raise InvalidError("must be a string", field="name")
    name, token = await _handler(request).create_token(_principal(request), role, name)
    return web.json_response({"name": name, "role": role, "token": token}, status=201)


async def revoke_token(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await _handler(request).revoke_token(_principal(request), name)
    return web.json_response({"name": name, "outcome": "revoked"})


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise InvalidError(f"the body is not JSON: {exc}", field="body") from exc
    if not isinstance(body, dict):
        raise InvalidError("must be a JSON object", field="body")
    return body


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(
    handler: ControlHandler, max_body_bytes: int, origins: set[str] | None = None
) -> web.Application:
    """The REST app; ``origins`` are the api's own (``scheme://host:port``) that browsers may use."""
    app = web.Application(
        middlewares=[_errors, _same_origin, _authenticated, _body_type], client_max_size=max_body_bytes
    )
    app[HANDLER_KEY] = handler
    app[ORIGINS_KEY] = origins if origins is not None else set()
    app.router.add_post("/v1/apply", apply)
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/tokens", list_tokens)
    app.router.add_post("/v1/tokens", create_token)
    app.router.add_delete("/v1/tokens/{name}", revoke_token)
    app.router.add_get("/v1/servers/{name}/replicas", server_replicas)
    app.router.add_get("/v1/pipelines/{name}/inspect", inspect_pipeline)
    app.router.add_get("/v1/{kind}", list_resources)
    app.router.add_get("/v1/{kind}/{name}", get_resource)
    app.router.add_delete("/v1/{kind}/{name}", delete_resource)
    app.router.add_get("/v1/{kind}/{name}/status", get_status)
    app.router.add_post("/v1/{kind}/{name}/scale", scale_resource)
    return app
