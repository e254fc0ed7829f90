"""Composition root of the autoscaler: load samples from NATS, Models from KV, decisions persisted
in KV_AUTOSCALER, replica changes applied through the api; one leader (a lease in KV_LEASES)
decides, other instances stand by with the same view."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import structlog
from aiohttp import web
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from modelplane.libs import subjects
from modelplane.libs.auth.grpc_metadata import bearer_interceptors
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.lease import LeaderElection, LeaseConfig, serve_while_leader
from modelplane.libs.nats_messages import decoded
from modelplane.libs.resources import convert
from modelplane.libs.resources.types import Model, Server
from modelplane.libs.store import TypedBucket, connect, disconnect, ensure_buckets
from modelplane.libs.tasks import TaskSupervisor
from modelplane.libs.tls import grpc_channel_credentials
from modelplane.libs.watching import BucketWatch, watch_buckets
from modelplane.proto import control_pb2, control_pb2_grpc, events_pb2, lease_pb2, resources_pb2, state_pb2
from modelplane.services.autoscaler import converters
from modelplane.services.autoscaler.handler import Autoscaler, Scaled
from modelplane.services.autoscaler.load import LoadBook, LoadSample
from modelplane.services.autoscaler.metrics import AutoscalerMetrics
from modelplane.services.autoscaler.model_scaling import ScalerState
from modelplane.services.autoscaler.server_handler import ServerAutoscaler
from modelplane.services.autoscaler.server_scaling import ServerDecision
from modelplane.services.autoscaler.settings import AutoscalerSettings

log = structlog.get_logger(__name__)

# How long start() waits for the KV replays before giving up.
_CATCH_UP_TIMEOUT = 30.0


class KvScalingStore:
    """Each model's record in KV_AUTOSCALER, written only when it says something new: the status
    service copies it into the model's status, and an idle model's identical record every tick
    would rewrite that status (and wake every watcher) for nothing. ``at`` is when it last changed.
    """

    def __init__(self, bucket: TypedBucket[state_pb2.ModelScaling]) -> None:
        self._bucket = bucket
        self._written: dict[str, state_pb2.ModelScaling] = {}

    async def load(self) -> dict[str, ScalerState]:
        # Another instance may have written since our last write (it led meanwhile).
        self._written.clear()
        return {
            item.key: ScalerState(average=item.value.average, down_count=item.value.down_count)
            for item in await self._bucket.items()
        }

    async def save(self, scaled: Scaled) -> None:
        d = scaled.decision
        record = state_pb2.ModelScaling(
            model=scaled.model,
            average=scaled.state.average,
            down_count=scaled.state.down_count,
            current_replicas=d.current,
            desired_replicas=d.desired,
            reason=d.reason,
        )
        if self._written.get(scaled.model) == record:
            return
        stamped = state_pb2.ModelScaling()
        stamped.CopyFrom(record)
        stamped.at = now_rfc3339()
        await self._bucket.put(scaled.model, stamped)
        self._written[scaled.model] = record

    async def forget(self, model: str) -> None:
        self._written.pop(model, None)
        await self._bucket.delete(model)


class ApiReplicaSetter:
    """Applies a new replica count through the api's Scale (only replicas change, under the
    stored revision: a user's concurrent edit of the rest of the spec is never overwritten)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = control_pb2_grpc.ControlServiceStub(channel)

    async def set_replicas(self, model: Model, replicas: int, reason: str) -> None:
        await self._scale("Model", model.meta.name, replicas, reason)

    async def set_server_replicas(self, server: Server, replicas: int, reason: str) -> None:
        await self._scale("Server", server.meta.name, replicas, reason)

    async def _scale(self, kind: str, name: str, replicas: int, reason: str) -> None:
        request = control_pb2.ScaleRequest(kind=kind, name=name, replicas=replicas, reason=reason)
        await self._stub.Scale(request, timeout=10)


def _api_channel(settings: AutoscalerSettings) -> grpc.aio.Channel:
    """A channel to the api carrying the autoscaler's token (over TLS when a CA is set)."""
    token = settings.api_token.get_secret_value() if settings.api_token else None
    interceptors = bearer_interceptors(token)
    if settings.api_ca is not None:
        credentials = grpc_channel_credentials(settings.api_ca)
        return grpc.aio.secure_channel(settings.api_address, credentials, interceptors=interceptors)
    return grpc.aio.insecure_channel(settings.api_address, interceptors=interceptors)


class AutoscalerApp:
    name = "autoscaler"

    def __init__(self, settings: AutoscalerSettings) -> None:
        self.settings = settings
        self.shutdown_timeout = settings.shutdown_timeout
        self.book = LoadBook(settings.stale_after_seconds)
        self.autoscaler: Autoscaler | None = None
        self._nc: NATS | None = None
        self._channel: grpc.aio.Channel | None = None
        self._subs: list[Subscription] = []
        self._supervisor = TaskSupervisor("autoscaler")
        self._election: LeaderElection | None = None
        self._closed = False
        self.servers: ServerAutoscaler | None = None
        self._servers_changed = asyncio.Event()
        self.metrics = AutoscalerMetrics()
        self.metrics_port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        settings = self.settings
        nc = await connect(settings.nats_url, name="modelplane-autoscaler", creds=settings.nats_creds)
        self._nc = nc
        js = nc.jetstream()
        await ensure_buckets(js)
        self._channel = _api_channel(settings)
        store = KvScalingStore(await TypedBucket.open(js, subjects.KV_AUTOSCALER, state_pb2.ModelScaling))
        autoscaler = Autoscaler(
            self.book,
            store,
            ApiReplicaSetter(self._channel),
            interval_seconds=settings.interval_seconds,
            window_seconds=settings.window_seconds,
            clock=time.monotonic,
        )
        self.autoscaler = autoscaler
        await autoscaler.restore()

        servers = ServerAutoscaler(ApiReplicaSetter(self._channel), packing=settings.server_packing)
        self.servers = servers
        changed = self._servers_changed

        def on_model(key: str, msg: resources_pb2.Model | None) -> None:
            model = convert.model_from_pb(msg) if msg is not None else None
            autoscaler.model_changed(key, model)
            servers.model_changed(key, model)
            if model is None or model.spec.autoscaling is None:
                self.metrics.model_forgotten(key)

        def on_server(key: str, msg: resources_pb2.Server | None) -> None:
            servers.server_changed(key, convert.server_from_pb(msg) if msg is not None else None)
            changed.set()

        def on_config(key: str, msg: resources_pb2.ServerConfig | None) -> None:
            servers.config_changed(key, convert.server_config_from_pb(msg) if msg is not None else None)

        def on_ask(key: str, msg: state_pb2.ServerScaleRequest | None) -> None:
            servers.ask_changed(key, converters.ask_from_pb(msg) if msg is not None else None)
            changed.set()

        def on_usage(key: str, msg: state_pb2.ServerState | None) -> None:
            servers.usage_changed(key, converters.replicas_from_pb(msg) if msg is not None else None)
            changed.set()

        await watch_buckets(
            js,
            self._supervisor,
            (
                BucketWatch(subjects.KV_MODELS, resources_pb2.Model, on_model),
                BucketWatch(subjects.KV_SERVERS, resources_pb2.Server, on_server),
                BucketWatch(subjects.KV_SERVER_CONFIGS, resources_pb2.ServerConfig, on_config),
                BucketWatch(subjects.KV_SCALE_REQUESTS, state_pb2.ServerScaleRequest, on_ask),
                BucketWatch(subjects.KV_SERVER_STATES, state_pb2.ServerState, on_usage),
            ),
            _CATCH_UP_TIMEOUT,
            "autoscaler",
        )

        async def on_load(msg: Msg) -> None:
            sample = decoded(events_pb2.ModelLoad, msg)
            if sample is None:
                return
            self.book.record(
                sample.model,
                sample.gateway,
                LoadSample(sample.in_flight, sample.held, sample.requests, sample.window_seconds),
                time.monotonic(),
            )

        async def on_wake(msg: Msg) -> None:
            wake = decoded(events_pb2.ModelWake, msg)
            if wake is None:
                return
            # The held requests count from now on, not from the gateway's next load report: a
            # tick in between must not read the model as idle and undo the wake.
            self.book.record(
                wake.model, wake.gateway, LoadSample(0, max(1, wake.held), 0, 0.0), time.monotonic()
            )
            if self.is_leader:
                scaled = await autoscaler.wake(wake.model)
                if scaled is not None:
                    await self._announce_model(scaled)

        self._subs = [
            await nc.subscribe(subjects.ALL_GATEWAY_LOAD, cb=on_load),
            await nc.subscribe(subjects.ALL_GATEWAY_WAKE, cb=on_wake),
        ]
        # Every instance follows load and models (a standby is warm); only the leader decides.
        leases = await TypedBucket.open(js, subjects.KV_LEASES, lease_pb2.Lease)
        lease = LeaseConfig(
            name=subjects.AUTOSCALER_LEASE,
            holder=f"{socket.gethostname()}-{os.getpid()}-{id(self):x}",
            ttl=settings.lease_ttl,
            renew_interval=settings.lease_renew_interval,
            margin=settings.lease_ttl / 4,
        )
        self._supervisor.spawn("autoscaler-leadership", serve_while_leader(leases, lease, self._term))
        await self._serve_metrics()

    async def _serve_metrics(self) -> None:
        async def metrics(_: web.Request) -> web.Response:
            self.metrics.leading(self.is_leader)
            return web.Response(
                body=self.metrics.render(), headers={"Content-Type": self.metrics.content_type}
            )

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.metrics_port)
        await site.start()
        server = site._server  # aiohttp exposes the bound socket only here
        sockets = getattr(server, "sockets", None) or ()
        self.metrics_port = sockets[0].getsockname()[1] if sockets else self.settings.metrics_port
        log.info(
            "autoscaler_metrics_listening", url=f"http://{self.settings.host}:{self.metrics_port}/metrics"
        )

    async def _announce_model(self, scaled: Scaled) -> None:
        """Metrics for every decision; an event for a change of replicas."""
        self.metrics.model_decided(scaled)
        d = scaled.decision
        if d.changes:
            await self._announce("Model", scaled.model, d.current, d.desired, d.reason)

    async def _announce_server(self, decision: ServerDecision) -> None:
        self.metrics.server_scaled(decision)
        await self._announce("Server", decision.server, decision.current, decision.desired, decision.reason)

    async def _announce(self, kind: str, name: str, current: int, desired: int, reason: str) -> None:
        """A thin ``scaled`` event on ``modelplane.events.<kind>.<name>`` (best effort)."""
        if self._nc is None:
            return
        event = events_pb2.Event(
            id=uuid.uuid4().hex,
            source="autoscaler",
            type="scaled_up" if desired > current else "scaled_down",
            schema_version=1,
            kind=kind,
            name=name,
            time=now_rfc3339(),
            attributes={"from": str(current), "to": str(desired), "reason": reason},
        )
        try:
            await self._nc.publish(subjects.resource_event(kind, name), event.SerializeToString())
        except Exception as exc:  # NATS is reconnecting: the change itself is in KV
            log.warning("scaling_event_not_sent", kind=kind, name=name, error=str(exc) or repr(exc))

    @property
    def is_leader(self) -> bool:
        return self._election is not None and self._election.is_leader

    @asynccontextmanager
    async def _term(self, election: LeaderElection) -> AsyncIterator[None]:
        """Decide while this instance leads, from the state the previous leader left."""
        assert self.autoscaler is not None
        await self.autoscaler.restore()
        self._election = election
        ticks = TaskSupervisor("autoscaler-term")
        ticks.spawn("autoscaler-ticks", self._ticks(self.autoscaler, election))
        if self.settings.server_scaling and self.servers is not None:
            ticks.spawn("autoscaler-servers", self._server_loop(self.servers, election))
        log.info("autoscaler_leading", term=election.term)
        try:
            yield
        finally:
            self._election = None
            await ticks.close()

    async def _ticks(self, autoscaler: Autoscaler, election: LeaderElection) -> None:
        while True:
            await asyncio.sleep(self.settings.interval_seconds)
            if election.is_leader:  # stop acting at once when the lease runs short
                for scaled in await autoscaler.tick():
                    await self._announce_model(scaled)

    async def _server_loop(self, servers: ServerAutoscaler, election: LeaderElection) -> None:
        """Decide for the servers as soon as a request, a server or its usage changes, and at
        every interval (a held-back scale-down is looked at again)."""
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.interval_seconds):
                    await self._servers_changed.wait()
            self._servers_changed.clear()
            if election.is_leader:
                for decision in await servers.evaluate():
                    await self._announce_server(decision)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._supervisor.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection may be gone already
                log.debug("unsubscribe_failed", error=str(exc))
        if self._channel is not None:
            await self._channel.close()
        await disconnect(self._nc)


def create() -> AutoscalerApp:
    return AutoscalerApp(AutoscalerSettings.model_validate({}))
