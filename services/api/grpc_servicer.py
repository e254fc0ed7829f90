"""The ControlService gRPC adapter: translate, call the handler, map errors. No logic here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import grpc
import structlog

from modelplane.libs.errors import InvalidError, ModelplaneError
from modelplane.proto import control_pb2, control_pb2_grpc
from modelplane.services.api import converters
from modelplane.services.api.handler import ControlHandler, parse_kind

log = structlog.get_logger(__name__)

R = TypeVar("R")
Unary = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    if isinstance(exc, ModelplaneError):
        code = getattr(grpc.StatusCode, exc.grpc_code_name, grpc.StatusCode.INTERNAL)
        await context.abort(code, str(exc))
    log.error("grpc_internal_error", error=repr(exc), exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error (see the api logs)")


def _mapped(method: Unary[R]) -> Unary[R]:
    """Turn our errors into gRPC status codes with a message naming the field."""

    @wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await method(self, request, context)
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
        self, request: control_pb2.ApplyRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.ApplyResponse:
        source = request.WhichOneof("source")
        if source == "manifest":
            resource, outcome = await self._handler.apply_manifest(
                converters.manifest_from_struct(request.manifest)
            )
        elif source == "resource":
            resource, outcome = await self._handler.apply(converters.resource_from_pb(request.resource))
        else:
            raise InvalidError("set either resource or manifest", field="source")
        return converters.apply_response(resource, outcome)

    @_mapped
    async def Scale(
        self, request: control_pb2.ScaleRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.ApplyResponse:
        resource, outcome = await self._handler.scale(
            parse_kind(request.kind), _name(request), request.replicas, request.reason
        )
        return converters.apply_response(resource, outcome)

    @_mapped
    async def Get(
        self, request: control_pb2.ResourceRef, context: grpc.aio.ServicerContext
    ) -> control_pb2.Resource:
        resource = await self._handler.get(parse_kind(request.kind), _name(request))
        return converters.resource_to_pb(resource)

    @_mapped
    async def List(
        self, request: control_pb2.ListRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.ListResponse:
        return converters.resources_to_pb(await self._handler.list(parse_kind(request.kind)))

    @_mapped
    async def Delete(
        self, request: control_pb2.ResourceRef, context: grpc.aio.ServicerContext
    ) -> control_pb2.DeleteResponse:
        outcome = await self._handler.delete(parse_kind(request.kind), _name(request))
        return control_pb2.DeleteResponse(outcome=outcome)

    @_mapped
    async def GetStatus(
        self, request: control_pb2.ResourceRef, context: grpc.aio.ServicerContext
    ) -> control_pb2.StatusResponse:
        status = await self._handler.get_status(parse_kind(request.kind), _name(request))
        return control_pb2.StatusResponse(status=status)

    @_mapped
    async def ListStatus(
        self, request: control_pb2.ListRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.ListStatusResponse:
        statuses = await self._handler.list_status(parse_kind(request.kind))
        return control_pb2.ListStatusResponse(statuses=statuses)

    @_mapped
    async def InspectPipeline(
        self, request: control_pb2.InspectPipelineRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.InspectPipelineResponse:
        found = await self._handler.inspect_pipeline(request.name, request.step, request.request_id)
        return control_pb2.InspectPipelineResponse(
            request_id=found.request_id,
            records=[
                control_pb2.StepRecord(step=r.step, port=r.port, json=r.json, time=r.time)
                for r in found.records
            ],
        )

    @_mapped
    async def GetServerReplicas(
        self, request: control_pb2.ResourceRef, context: grpc.aio.ServicerContext
    ) -> control_pb2.ServerReplicasResponse:
        replicas = await self._handler.server_replicas(_name(request))
        return control_pb2.ServerReplicasResponse(replicas=replicas)

    async def WatchStatus(
        self, request: control_pb2.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[control_pb2.WatchEvent]:
        try:
            kind = parse_kind(request.kind)
            stream = self._handler.watch_status(kind, request.name)
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
            if not request.name:
                raise InvalidError("is required", field="name")
            stream = self._handler.follow_model(request.name)
            try:
                async for item in stream:
                    yield converters.follow_event(item)
            finally:
                await stream.aclose()
        except grpc.aio.AbortError:
            raise
        except ModelplaneError as exc:
            await _abort(context, exc)
