"""Composition root of the scheduler: NATS connection, KV watches, subscriptions, timers.

Start-up order matters for a restart that must not disturb running models: first the persisted
placements are restored, then every watched bucket is replayed up to its end-of-replay marker,
and only then does the handler start reconciling (so it never acts on a half-read cluster).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from modelplane.libs import subjects
from modelplane.libs.proto import agent_pb2, resources_pb2, state_pb2
from modelplane.libs.resources.convert import model_from_pb
from modelplane.libs.store import TypedBucket, connect, disconnect, ensure_buckets
from modelplane.libs.tasks import KeyedWorkers, TaskSupervisor
from modelplane.libs.watching import BucketWatch, watch_buckets
from modelplane.services.scheduler import converters
from modelplane.services.scheduler.cluster import ServerRecord
from modelplane.services.scheduler.handler import Scheduler
from modelplane.services.scheduler.nats_adapters import KvPlacementOutputs, NatsAgentClient
from modelplane.services.scheduler.settings import SchedulerSettings

log = structlog.get_logger(__name__)

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

        await watch_buckets(
            js,
            self._supervisor,
            (
                BucketWatch(subjects.KV_MODELS, resources_pb2.Model, on_model),
                BucketWatch(subjects.KV_SERVERS, resources_pb2.Server, on_server),
                BucketWatch(subjects.KV_SERVER_CONFIGS, resources_pb2.ServerConfig, on_config),
                BucketWatch(subjects.KV_REPLICAS, state_pb2.ReplicaInfo, on_replica),
            ),
            _CATCH_UP_TIMEOUT,
            "scheduler",
        )

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


async def _every(seconds: float, action: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            action()
        except Exception:
            log.exception("periodic_action_failed", action=getattr(action, "__name__", "?"))


def create() -> SchedulerApp:
    return SchedulerApp(SchedulerSettings.model_validate({}))
