"""Composition root of the scheduler: NATS connection, leader lease, KV watches, subscriptions, timers.

Only one scheduler acts at a time. ``start()`` connects and campaigns for the ``scheduler`` lease
(libs/lease.py) as a standby that serves nothing; each time this instance wins, a *term* builds
the whole machinery below from KV, and when the lease is lost (or at close) the term tears it all
down before the lease can pass on, and the instance goes back to being a standby.

Start-up order of a term matters for a restart that must not disturb running models: first the
persisted placements are restored, then every watched bucket is replayed up to its end-of-replay
marker, and only then does the handler start reconciling (so it never acts on a half-read cluster).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from modelplane.libs import subjects
from modelplane.libs.gc_tuning import tune_for_large_heap
from modelplane.libs.lease import LeaderElection, LeaseConfig, serve_while_leader
from modelplane.libs.nats_messages import peer_only
from modelplane.libs.resources.convert import model_from_pb
from modelplane.libs.store import TypedBucket, connect, disconnect, ensure_buckets
from modelplane.libs.tasks import KeyedWorkers, TaskSupervisor
from modelplane.libs.watching import BucketWatch, watch_buckets
from modelplane.proto import agent_pb2, lease_pb2, resources_pb2, state_pb2
from modelplane.services.scheduler import converters
from modelplane.services.scheduler.backoff import Backoff
from modelplane.services.scheduler.handler import Scheduler
from modelplane.services.scheduler.nats_adapters import KvPlacementOutputs, KvServerOutputs, NatsAgentClient
from modelplane.services.scheduler.placement import default_policy
from modelplane.services.scheduler.settings import SchedulerSettings

log = structlog.get_logger(__name__)

# How long a term waits for the KV replays before giving up (a NATS that slow is broken).
_CATCH_UP_TIMEOUT = 30.0
# Name of the leader lease in KV_LEASES.
LEASE_NAME = subjects.SCHEDULER_LEASE


class SchedulerApp:
    name = "scheduler"

    def __init__(self, settings: SchedulerSettings) -> None:
        self.settings = settings
        self.shutdown_timeout = settings.shutdown_timeout
        self.handler: Scheduler | None = None
        self._nc: NATS | None = None
        # The leader lease: the holder stops acting a quarter of the ttl before it can pass on.
        self.lease = LeaseConfig(
            name=LEASE_NAME,
            holder=settings.instance_id,
            ttl=settings.lease_ttl,
            renew_interval=settings.lease_renew_interval,
            margin=settings.lease_ttl / 4,
        )
        self._election: LeaderElection | None = None
        # Owns the campaign; the term's tasks and subscriptions are below, rebuilt every term.
        self._campaign = TaskSupervisor("scheduler-lease")
        self._supervisor = TaskSupervisor("scheduler")
        self._subscriptions: list[Subscription] = []
        self._closed = False

    @property
    def is_leader(self) -> bool:
        """True while this instance holds the lease and runs the scheduling machinery."""
        return self._election is not None and self._election.is_leader

    async def start(self) -> None:
        nc = await connect(
            self.settings.nats_url, name="modelplane-scheduler", creds=self.settings.nats_creds
        )
        self._nc = nc
        js = nc.jetstream()
        await ensure_buckets(js)
        leases = await TypedBucket.open(js, subjects.KV_LEASES, lease_pb2.Lease)
        self._campaign.spawn("leadership", serve_while_leader(leases, self.lease, self._term))
        log.info("scheduler_standby", instance=self.lease.holder, lease=LEASE_NAME)

    @asynccontextmanager
    async def _term(self, election: LeaderElection) -> AsyncIterator[None]:
        """Run the scheduling machinery while this instance leads; tear it down on the way out."""
        log.info("scheduler_leading", instance=self.lease.holder, term=election.term)
        self._election = election
        self._supervisor = TaskSupervisor("scheduler")
        self._subscriptions = []
        try:
            await self._lead()
            yield
        finally:
            self._election = None
            if self.handler is not None:
                # First: events that still arrive while the term's tasks wind down are ignored.
                self.handler.stop()
            self.handler = None
            await self._stop_leading()
            log.info("scheduler_stopped_leading", instance=self.lease.holder, term=election.term)

    async def _lead(self) -> None:
        assert self._nc is not None
        nc = self._nc
        js = nc.jetstream()
        placements = await TypedBucket.open(js, subjects.KV_PLACEMENTS, state_pb2.ModelPlacement)
        routes = await TypedBucket.open(js, subjects.KV_ROUTES, state_pb2.ModelRoute)
        server_states = await TypedBucket.open(js, subjects.KV_SERVER_STATES, state_pb2.ServerState)
        scale_requests = await TypedBucket.open(js, subjects.KV_SCALE_REQUESTS, state_pb2.ServerScaleRequest)
        handler = Scheduler(
            NatsAgentClient(nc, self.settings.command_timeout),
            KvPlacementOutputs(placements, routes),
            KeyedWorkers(self._supervisor, "model"),
            heartbeat_timeout=self.settings.heartbeat_timeout,
            policy=default_policy(self.settings.server_strategy),
            server_outputs=KvServerOutputs(nc, server_states, scale_requests),
            backoff=Backoff(self.settings.retry_backoff_initial, self.settings.retry_backoff_max),
        )
        self.handler = handler
        handler.restore([converters.record_from_pb(v.value) for v in await placements.items()])
        handler.restore_scale_requests(
            [converters.scale_request_from_pb(v.value) for v in await scale_requests.items()]
        )

        def on_model(key: str, msg: resources_pb2.Model | None) -> None:
            handler.model_changed(key, model_from_pb(msg) if msg is not None else None)

        def on_server(key: str, msg: resources_pb2.Server | None) -> None:
            if msg is None:
                handler.server_changed(key, None)
            else:
                handler.server_changed(
                    key, *converters.server_from_pb(msg, self.settings.max_server_replicas)
                )

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

        self._subscriptions.append(await nc.subscribe(subjects.AGENT_REPORTS, cb=peer_only(self._on_report)))
        self._subscriptions.append(
            await nc.subscribe(subjects.AGENT_HEARTBEATS, cb=peer_only(self._on_heartbeat))
        )
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

    async def _stop_leading(self) -> None:
        for sub in self._subscriptions:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may be gone already
                log.debug("unsubscribe_failed", subject=sub.subject)
        self._subscriptions = []
        await self._supervisor.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Ends the term (if leading) and then releases the lease, in that order.
        await self._campaign.close(timeout=self.shutdown_timeout)
        await self._stop_leading()
        await disconnect(self._nc)


async def _every(seconds: float, action: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            action()
        except Exception:
            log.exception("periodic_action_failed", action=getattr(action, "__name__", "?"))


def create() -> SchedulerApp:
    settings = SchedulerSettings.model_validate({})
    # Process-wide, so done by the process's composition root, not by the app tests share.
    tune_for_large_heap(settings.gc_young_threshold)
    return SchedulerApp(settings)
