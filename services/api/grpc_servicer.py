"""The ControlService gRPC adapter: authenticate, translate, call the handler, map errors.

Every method reads the caller's token from the ``authorization`` metadata (``Bearer <token>``)
and hands the handler's ``Principal`` to the call; the handler decides what the role may do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import grpc
import structlog

from modelplane.libs.auth.bearer import AUTHORIZATION, bearer_token
from modelplane.libs.auth.tokens import Principal
from modelplane.libs.errors import InvalidError, ModelplaneError
from modelplane.proto import control_pb2, control_pb2_grpc
from modelplane.services.api import converters
from modelplane.services.api.handler import ControlHandler
from modelplane.services.api.kinds import is_native, parse_any_kind, parse_kind, service_name_of

log = structlog.get_logger(__name__)

R = TypeVar("R")
Unary = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]
Authenticated = Callable[[Any, Any, Principal], Awaitable[R]]


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    if isinstance(exc, ModelplaneError):
        code = getattr(grpc.StatusCode, exc.grpc_code_name, grpc.StatusCode.INTERNAL)
        await context.abort(code, str(exc))
    log.error("grpc_internal_error", error=repr(exc), exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error (see the api logs)")


def _token(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == AUTHORIZATION:
            return bearer_token(value if isinstance(value, str) else value.decode("latin-1"))
    return None


def _mapped(method: Authenticated[R]) -> Unary[R]:
    """Authenticate the caller, then turn our errors into gRPC status codes naming the field."""

    @wraps(method)
    async def wrapper(self: ControlServicer, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            principal = await self._handler.authenticate(_token(context))
            return await method(self, request, principal)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _abort(context, exc)
            raise  # unreachable: abort raises

    return wrapper


def _name(ref: control_pb2.ResourceRef | control_pb2.ScaleRequest) -> str:
    if not ref.name:
        raise InvalidError("is required", field="name")
    return ref.name


class ControlServicer(control_pb2_grpc.ControlServiceServicer):
    def __init__(self, handler: ControlHandler) -> None:
        self._handler = handler

    @_mapped
    async def Apply(
        self, request: control_pb2.ApplyRequest, principal: Principal
    ) -> control_pb2.ApplyResponse:
        source = request.WhichOneof("source")
        if source == "manifest":
            resource, outcome = await self._handler.apply_manifest(
                principal, converters.manifest_from_struct(request.manifest)
            )
        elif source == "resource":
            resource, outcome = await self._handler.apply(
                principal, converters.resource_from_pb(request.resource)
            )
        else:
            raise InvalidError("set either resource or manifest", field="source")
        return converters.apply_response(resource, outcome)

    @_mapped
    async def ApplyAll(
        self, request: control_pb2.ApplyAllRequest, principal: Principal
    ) -> control_pb2.ApplyAllResponse:
        if not request.manifests:
            raise InvalidError("at least one manifest is required", field="manifests")
        docs = [converters.manifest_from_struct(m) for m in request.manifests]
        applied = await self._handler.apply_manifests(principal, docs)
        return control_pb2.ApplyAllResponse(
            items=[converters.apply_response(resource, outcome) for resource, outcome in applied]
        )

    @_mapped
    async def Scale(
        self, request: control_pb2.ScaleRequest, principal: Principal
    ) -> control_pb2.ApplyResponse:
        kind = parse_kind(request.kind)
        name = service_name_of(kind, _name(request), request.namespace)
        resource, outcome = await self._handler.scale(principal, kind, name, request.replicas, request.reason)
        return converters.apply_response(resource, outcome)

    @_mapped
    async def Get(self, request: control_pb2.ResourceRef, principal: Principal) -> control_pb2.Resource:
        kind = parse_any_kind(request.kind)
        if not is_native(kind):
            view = await self._handler.get_foreign(principal, kind, _name(request), request.namespace)
            return converters.foreign_to_pb(view.entry, view)
        native = parse_kind(kind)
        resource = await self._handler.get(
            principal, native, service_name_of(native, _name(request), request.namespace)
        )
        return converters.resource_to_pb(resource)

    @_mapped
    async def List(self, request: control_pb2.ListRequest, principal: Principal) -> control_pb2.ListResponse:
        kind = parse_any_kind(request.kind)
        if not is_native(kind):
            views = await self._handler.list_foreign(principal, kind)
            return control_pb2.ListResponse(resources=[converters.foreign_to_pb(v.entry, v) for v in views])
        return converters.resources_to_pb(await self._handler.list(principal, parse_kind(kind)))

    @_mapped
    async def Delete(
        self, request: control_pb2.ResourceRef, principal: Principal
    ) -> control_pb2.DeleteResponse:
        kind = parse_any_kind(request.kind)
        if not is_native(kind):
            outcome = await self._handler.delete_foreign(principal, kind, _name(request), request.namespace)
        else:
            native = parse_kind(kind)
            name = service_name_of(native, _name(request), request.namespace)
            outcome = await self._handler.delete(principal, native, name)
        return control_pb2.DeleteResponse(outcome=outcome)

    @_mapped
    async def GetStatus(
        self, request: control_pb2.ResourceRef, principal: Principal
    ) -> control_pb2.StatusResponse:
        kind = parse_kind(request.kind)
        name = service_name_of(kind, _name(request), request.namespace)
        status = await self._handler.get_status(principal, kind, name)
        return control_pb2.StatusResponse(status=status)

    @_mapped
    async def ListStatus(
        self, request: control_pb2.ListRequest, principal: Principal
    ) -> control_pb2.ListStatusResponse:
        statuses = await self._handler.list_status(principal, parse_kind(request.kind))
        return control_pb2.ListStatusResponse(statuses=statuses)

    @_mapped
    async def InspectPipeline(
        self, request: control_pb2.InspectPipelineRequest, principal: Principal
    ) -> control_pb2.InspectPipelineResponse:
        name = service_name_of("Pipeline", request.name, request.namespace)
        found = await self._handler.inspect_pipeline(principal, name, request.step, request.request_id)
        return control_pb2.InspectPipelineResponse(
            request_id=found.request_id,
            records=[
                control_pb2.StepRecord(step=r.step, port=r.port, json=r.json, time=r.time)
                for r in found.records
            ],
        )

    @_mapped
    async def GetServerReplicas(
        self, request: control_pb2.ResourceRef, principal: Principal
    ) -> control_pb2.ServerReplicasResponse:
        name = service_name_of("Server", _name(request), request.namespace)
        replicas = await self._handler.server_replicas(principal, name)
        return control_pb2.ServerReplicasResponse(replicas=replicas)

    @_mapped
    async def CreateToken(
        self, request: control_pb2.CreateTokenRequest, principal: Principal
    ) -> control_pb2.CreateTokenResponse:
        name, token = await self._handler.create_token(principal, request.role, request.name)
        return control_pb2.CreateTokenResponse(name=name, role=request.role, token=token)

    @_mapped
    async def ListTokens(
        self, request: control_pb2.ListTokensRequest, principal: Principal
    ) -> control_pb2.ListTokensResponse:
        tokens = await self._handler.list_tokens(principal)
        return control_pb2.ListTokensResponse(
            tokens=[control_pb2.TokenInfo(name=t.name, role=t.role, created=t.created) for t in tokens]
        )

    @_mapped
    async def RevokeToken(
        self, request: control_pb2.RevokeTokenRequest, principal: Principal
    ) -> control_pb2.RevokeTokenResponse:
        if not request.name:
            raise InvalidError("is required", field="name")
        await self._handler.revoke_token(principal, request.name)
        return control_pb2.RevokeTokenResponse()

    async def WatchStatus(
        self, request: control_pb2.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[control_pb2.WatchEvent]:
        try:
            principal = await self._handler.authenticate(_token(context))
            kind = parse_kind(request.kind)
            name = service_name_of(kind, request.name, request.namespace) if request.name else ""
            stream = self._handler.watch_status(principal, kind, name)
            try:
                async for type_, status in stream:
                    yield control_pb2.WatchEvent(type=type_, status=status)
            finally:
                await stream.aclose()
        except grpc.aio.AbortError:
            raise
        except ModelplaneError as exc:
            await _abort(context, exc)

    async def FollowModel(
        self, request: control_pb2.FollowModelRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[control_pb2.FollowModelEvent]:
        try:
            principal = await self._handler.authenticate(_token(context))
            if not request.name:
                raise InvalidError("is required", field="name")
            stream = self._handler.follow_model(
                principal, service_name_of("Model", request.name, request.namespace)
            )
            try:
                async for item in stream:
                    yield converters.follow_event(item)
            finally:
                await stream.aclose()
        except grpc.aio.AbortError:
            raise
        except ModelplaneError as exc:
            await _abort(context, exc)
