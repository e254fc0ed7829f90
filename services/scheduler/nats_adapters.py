"""NATS edges of the scheduler: agent commands (request/reply) and KV outputs.

They only translate between protobuf and scheduler types and map transport failures to
``CommandResult(accepted=False, reason=...)``; every decision is in handler.py.
"""

from __future__ import annotations

import uuid
from typing import TypeVar

import nats.errors
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NATS

from modelplane.libs import subjects
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.resources.types import ModelSpec
from modelplane.libs.routes import Route, route_to_pb
from modelplane.libs.store import TypedBucket
from modelplane.proto import agent_pb2, state_pb2
from modelplane.services.scheduler import converters
from modelplane.services.scheduler.records import CommandResult, ModelRecord, ScaleRequest, ServerUsage

M = TypeVar("M", bound=Message)


class NatsAgentClient:
    """Sends LoadModelCommand/UnloadModelCommand to one replica's agent and reads its reply."""

    def __init__(self, nc: NATS, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout

    async def load(self, server: str, index: int, model: str, version: int, spec: ModelSpec) -> CommandResult:
        command = converters.load_command_to_pb(model, version, spec)
        return await self._request(subjects.agent_command(server, index, "load"), command.SerializeToString())

    async def unload(self, server: str, index: int, model: str, version: int) -> CommandResult:
        command = converters.unload_command_to_pb(model, version)
        return await self._request(
            subjects.agent_command(server, index, "unload"), command.SerializeToString()
        )

    async def _request(self, subject: str, payload: bytes) -> CommandResult:
        try:
            msg = await self._nc.request(subject, payload, timeout=self._timeout)
        except nats.errors.NoRespondersError:
            return CommandResult(False, f"no agent is listening on {subject}")
        except nats.errors.TimeoutError:
            return CommandResult(False, f"agent did not answer {subject} within {self._timeout:g}s")
        reply = agent_pb2.CommandReply()
        try:
            reply.ParseFromString(msg.data)
        except DecodeError:
            return CommandResult(False, f"agent sent an unreadable reply on {subject}")
        return converters.command_reply_from_pb(reply)


class KvPlacementOutputs:
    """Writes KV_ROUTES then KV_PLACEMENTS; skips a write whose bytes did not change."""

    def __init__(
        self,
        placements: TypedBucket[state_pb2.ModelPlacement],
        routes: TypedBucket[state_pb2.ModelRoute],
    ) -> None:
        self._placements = placements
        self._routes = routes
        self._written: dict[tuple[str, str], bytes] = {}

    async def save(self, record: ModelRecord, route: Route) -> None:
        await self._put(self._routes, route.model, route_to_pb(route))
        await self._put(self._placements, record.name, converters.record_to_pb(record))

    async def remove(self, model: str) -> None:
        for bucket in (self._routes, self._placements):
            await bucket.delete(model)
            self._written.pop((bucket.name, model), None)

    async def _put(self, bucket: TypedBucket[M], key: str, value: M) -> None:
        data = value.SerializeToString(deterministic=True)
        if self._written.get((bucket.name, key)) == data:
            return
        await bucket.put(key, value)
        self._written[(bucket.name, key)] = data


class KvServerOutputs:
    """Writes KV_SERVER_STATES and KV_SCALE_REQUESTS; announces scale request changes.

    Each change of a pending scale request is published as a thin ``Event`` (type
    ``scale_up`` | ``scale_down`` | ``scale_cleared``) on ``subjects.server_scale_request(server)``
    after the KV write, so a consumer that re-reads KV on the event sees the new request.
    """

    def __init__(
        self,
        nc: NATS,
        states: TypedBucket[state_pb2.ServerState],
        requests: TypedBucket[state_pb2.ServerScaleRequest],
    ) -> None:
        self._nc = nc
        self._states = states
        self._requests = requests

    async def save_usage(self, usage: ServerUsage) -> None:
        await self._states.put(usage.server, converters.usage_to_pb(usage))

    async def remove_usage(self, server: str) -> None:
        await self._states.delete(server)

    async def request_scale(self, request: ScaleRequest) -> None:
        await self._requests.put(request.server, converters.scale_request_to_pb(request))
        await self._announce(request.server, f"scale_{request.direction}", request)

    async def clear_scale(self, server: str) -> None:
        await self._requests.delete(server)
        await self._announce(server, "scale_cleared", None)

    async def _announce(self, server: str, event_type: str, request: ScaleRequest | None) -> None:
        event = converters.scale_event_to_pb(uuid.uuid4().hex, server, event_type, now_rfc3339(), request)
        await self._nc.publish(subjects.server_scale_request(server), event.SerializeToString())
