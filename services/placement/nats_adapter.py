"""NATS edge of the agent: command subscriptions, report publishing and heartbeats."""

from __future__ import annotations

import asyncio

import structlog
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from modelplane.libs import subjects
from modelplane.libs.nats_messages import decoded, peer_only
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import agent_pb2
from modelplane.services.placement import converters
from modelplane.services.placement.handler import PlacementHandler
from modelplane.services.placement.types import Decision, ReplicaId, Report

log = structlog.get_logger(__name__)


class NatsReports:
    """Publishes the handler's reports as ModelReplicaReport on AGENT_REPORTS."""

    def __init__(self, nc: NATS, replica: ReplicaId) -> None:
        self._nc = nc
        self._replica = replica

    async def report(self, report: Report) -> None:
        msg = converters.report_to_pb(self._replica, report)
        await self._nc.publish(subjects.AGENT_REPORTS, msg.SerializeToString())


async def heartbeat_loop(nc: NATS, replica: ReplicaId, interval: float) -> None:
    """Publish a Heartbeat every ``interval`` seconds until cancelled."""
    payload = converters.heartbeat_to_pb(replica).SerializeToString()
    while True:
        await nc.publish(subjects.AGENT_HEARTBEATS, payload)
        await asyncio.sleep(interval)


class CommandSubscriber:
    """Serves this replica's subjects for the handler: load/unload and ensure (request/reply),
    usage reports (published by the gateway)."""

    def __init__(
        self,
        nc: NATS,
        handler: PlacementHandler,
        replica: ReplicaId,
        supervisor: TaskSupervisor,
        ensure_timeout: float,
    ) -> None:
        self._nc = nc
        self._handler = handler
        self._replica = replica
        self._supervisor = supervisor
        self._ensure_timeout = ensure_timeout
        self._subs: list[Subscription] = []

    async def start(self) -> None:
        server, index = self._replica.server, self._replica.index
        self._subs = [
            await self._nc.subscribe(
                subjects.agent_command(server, index, "load"), cb=peer_only(self._on_load)
            ),
            await self._nc.subscribe(
                subjects.agent_command(server, index, "unload"), cb=peer_only(self._on_unload)
            ),
            await self._nc.subscribe(
                subjects.agent_command(server, index, "ensure"), cb=peer_only(self._on_ensure)
            ),
            await self._nc.subscribe(subjects.agent_usage(server, index), cb=peer_only(self._on_usage)),
        ]
        # Subscriptions reach the server asynchronously; flush so a scheduler that sees the
        # registration in KV never meets "no responders".
        await self._nc.flush()

    async def close(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection may already be closed
                log.debug("command_unsubscribe_failed", error=repr(exc))

    async def _on_load(self, msg: Msg) -> None:
        command = agent_pb2.LoadModelCommand()
        try:
            command.ParseFromString(msg.data)
        except DecodeError:
            await self._reply(msg, Decision(False, "the payload is not a LoadModelCommand"))
            return
        await self._reply(msg, self._handler.submit_load(converters.load_from_pb(command)))

    async def _on_unload(self, msg: Msg) -> None:
        command = agent_pb2.UnloadModelCommand()
        try:
            command.ParseFromString(msg.data)
        except DecodeError:
            await self._reply(msg, Decision(False, "the payload is not an UnloadModelCommand"))
            return
        await self._reply(msg, self._handler.submit_unload(converters.unload_from_pb(command)))

    async def _on_ensure(self, msg: Msg) -> None:
        command = agent_pb2.EnsureLoadedCommand()
        try:
            command.ParseFromString(msg.data)
        except DecodeError:
            await self._reply(msg, Decision(False, "the payload is not an EnsureLoadedCommand"))
            return
        if not command.model:
            await self._reply(msg, Decision(False, "the command names no model"))
            return
        # A reload takes a while and the subscription hands over messages one at a time: answer
        # each on its own task, so one model's reload does not hold up another's.
        self._supervisor.spawn(
            f"ensure-{command.model}-{command.version}", self._ensure(msg, command.model, command.version)
        )

    async def _ensure(self, msg: Msg, model: str, version: int) -> None:
        try:
            decision = await asyncio.wait_for(self._handler.ensure(model, version), self._ensure_timeout)
        except TimeoutError:
            decision = Decision(
                False, f"reloading {model}_{version} took longer than {self._ensure_timeout:g}s"
            )
        await self._reply(msg, decision)

    async def _on_usage(self, msg: Msg) -> None:
        usage = decoded(agent_pb2.ModelUsage, msg)
        if usage is None:
            return
        self._handler.touch(usage.server_model_names)

    async def _reply(self, msg: Msg, decision: Decision) -> None:
        if not decision.accepted:
            log.info("command_rejected", subject=msg.subject, reason=decision.reason)
        if msg.reply:
            await msg.respond(converters.decision_to_pb(decision).SerializeToString())
