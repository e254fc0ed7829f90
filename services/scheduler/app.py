"""Composition root of the scheduler: NATS connection, KV watches, subscriptions, timers.

Start-up order matters for a restart that must not disturb running models: first the persisted
placements are restored, then every watched bucket is replayed up to its end-of-replay marker,
and only then does the handler start reconciling (so it never acts on a half-read cluster).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import structlog
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from modelplane.libs import subjects
from modelplane.libs.errors import RetryableError
from modelplane.libs.proto import agent_pb2, resources_pb2, state_pb2
from modelplane.libs.resources.convert import model_from_pb
from modelplane.libs.store import TypedBucket, connect, disconnect, ensure_buckets
from modelplane.libs.tasks import KeyedWorkers, TaskSupervisor
from modelplane.services.scheduler import converters
from modelplane.services.scheduler.cluster import ServerRecord
from modelplane.services.scheduler.handler import Scheduler
from modelplane.services.scheduler.nats_adapters import KvPlacementOutputs, NatsAgentClient
from modelplane.services.scheduler.settings import SchedulerSettings

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=Message)

# How long start() waits for the KV replays before giving up (a NATS that slow is broken).
_CATCH_UP_TIMEOUT = 30.0


class SchedulerApp:
    name = "scheduler"

    def __init__(self, settings: SchedulerSettings) -> None:
        self.settings = settings
        self.shutdown_timeout = settings.shutdown_timeout
        self.handler: Scheduler | None = None
        self._nc: NATS | None = None
        self._supervisor = TaskSupervisor("scheduler")
        self._subscriptions: list[Subscription] = []
        self._closed = False

    async def start(self) -> None:
        nc = await connect(self.settings.nats_url, name="modelplane-scheduler")
        self._nc = nc
        js = nc.jetstream()
        await ensure_buckets(js)
        placements = await TypedBucket.open(js, subjects.KV_PLACEMENTS, state_pb2.ModelPlacement)
        routes = await TypedBucket.open(js, subjects.KV_ROUTES, state_pb2.ModelRoute)
        handler = Scheduler(
            NatsAgentClient(nc, self.settings.command_timeout),
            KvPlacementOutputs(placements, routes),
            KeyedWorkers(self._supervisor, "model"),
            heartbeat_timeout=self.settings.heartbeat_timeout,
        )
        self.handler = handler
        handler.restore([converters.record_from_pb(v.value) for v in await placements.items()])

        def on_model(key: str, msg: resources_pb2.Model | None) -> None:
            handler.model_changed(key, model_from_pb(msg) if msg is not None else None)

        def on_server(key: str, msg: resources_pb2.Server | None) -> None:
            record = ServerRecord(key, msg.spec.replicas, msg.spec.server_config) if msg is not None else None
            handler.server_changed(key, record)

        def on_config(key: str, msg: resources_pb2.ServerConfig | None) -> None:
            handler.server_config_changed(key, msg.spec.parallel_workers if msg is not None else None)

        def on_replica(key: str, msg: state_pb2.ReplicaInfo | None) -> None:
            handler.replica_changed(key, converters.replica_from_pb(msg) if msg is not None else None)

        caught_up: list[asyncio.Event] = []
        for bucket_name, message_type, callback in (
            (subjects.KV_MODELS, resources_pb2.Model, on_model),
            (subjects.KV_SERVERS, resources_pb2.Server, on_server),
            (subjects.KV_SERVER_CONFIGS, resources_pb2.ServerConfig, on_config),
            (subjects.KV_REPLICAS, state_pb2.ReplicaInfo, on_replica),
        ):
            bucket: TypedBucket[Message] = await TypedBucket.open(js, bucket_name, message_type)
            event = asyncio.Event()
            caught_up.append(event)
            self._supervisor.spawn(f"watch:{bucket_name}", _watch(bucket, callback, event))  # type: ignore[arg-type]
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in caught_up)), _CATCH_UP_TIMEOUT)
        except TimeoutError as exc:
            raise RetryableError("scheduler could not read the KV buckets in time") from exc

        self._subscriptions.append(await nc.subscribe(subjects.AGENT_REPORTS, cb=self._on_report))
        self._subscriptions.append(await nc.subscribe(subjects.AGENT_HEARTBEATS, cb=self._on_heartbeat))
        handler.start()
        self._supervisor.spawn("retry", _every(self.settings.retry_interval, handler.retry))
        self._supervisor.spawn(
            "heartbeats", _every(self.settings.heartbeat_timeout / 3, handler.check_heartbeats)
        )
        log.info("scheduler_started")
        log.debug("placement_policy", rules=handler.policy.describe())

    async def _on_report(self, msg: Msg) -> None:
        report = agent_pb2.ModelReplicaReport()
        try:
            report.ParseFromString(msg.data)
        except DecodeError:
            log.warning("report_unreadable", subject=msg.subject)
            return
        if self.handler is not None:
            self.handler.report(converters.report_from_pb(report))

    async def _on_heartbeat(self, msg: Msg) -> None:
        beat = agent_pb2.Heartbeat()
        try:
            beat.ParseFromString(msg.data)
        except DecodeError:
            return
        if self.handler is not None:
            self.handler.heartbeat(beat.server, beat.index, beat.incarnation)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for sub in self._subscriptions:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may be gone already
                log.debug("unsubscribe_failed", subject=sub.subject)
        await self._supervisor.close()
        await disconnect(self._nc)


async def _watch(
    bucket: TypedBucket[M], callback: Callable[[str, M | None], None], caught_up: asyncio.Event
) -> None:
    async for change in bucket.watch():
        if change is None:
            caught_up.set()
            continue
        try:
            callback(change.key, change.value)
        except Exception:  # one bad value must not stop the watch
            log.exception("watch_change_failed", bucket=bucket.name, key=change.key)


async def _every(seconds: float, action: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            action()
        except Exception:
            log.exception("periodic_action_failed", action=getattr(action, "__name__", "?"))


def create() -> SchedulerApp:
    return SchedulerApp(SchedulerSettings.model_validate({}))
