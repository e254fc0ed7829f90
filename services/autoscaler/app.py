"""Composition root of the autoscaler: load samples from NATS, Models from KV, decisions persisted
in KV_AUTOSCALER, replica changes applied through the api; one leader (a lease in KV_LEASES)
decides, other instances stand by with the same view."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from modelplane.libs import subjects
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.lease import LeaderElection, LeaseConfig, serve_while_leader
from modelplane.libs.resources import convert
from modelplane.libs.resources.types import Model
from modelplane.libs.store import TypedBucket, connect, disconnect, ensure_buckets
from modelplane.libs.tasks import TaskSupervisor
from modelplane.libs.watching import BucketWatch, watch_buckets
from modelplane.proto import control_pb2, control_pb2_grpc, events_pb2, lease_pb2, resources_pb2, state_pb2
from modelplane.services.autoscaler.handler import Autoscaler, Scaled
from modelplane.services.autoscaler.load import LoadBook, LoadSample
from modelplane.services.autoscaler.model_scaling import ScalerState
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
    """Applies the new replica count through the api, as a user's change would be."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = control_pb2_grpc.ControlServiceStub(channel)

    async def set_replicas(self, model: Model, replicas: int, reason: str) -> None:
        scaled = dataclasses.replace(model, spec=dataclasses.replace(model.spec, replicas=replicas))
        request = control_pb2.ApplyRequest(resource=control_pb2.Resource(model=convert.model_to_pb(scaled)))
        await self._stub.Apply(request, timeout=10)


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

    async def start(self) -> None:
        settings = self.settings
        nc = await connect(settings.nats_url, name="modelplane-autoscaler")
        self._nc = nc
        js = nc.jetstream()
        await ensure_buckets(js)
        self._channel = grpc.aio.insecure_channel(settings.api_address)
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

        def on_model(key: str, msg: resources_pb2.Model | None) -> None:
            autoscaler.model_changed(key, convert.model_from_pb(msg) if msg is not None else None)

        await watch_buckets(
            js,
            self._supervisor,
            (BucketWatch(subjects.KV_MODELS, resources_pb2.Model, on_model),),
            _CATCH_UP_TIMEOUT,
            "autoscaler",
        )

        async def on_load(msg: Msg) -> None:
            sample = events_pb2.ModelLoad.FromString(msg.data)
            self.book.record(
                sample.model,
                sample.gateway,
                LoadSample(sample.in_flight, sample.held, sample.requests, sample.window_seconds),
                time.monotonic(),
            )

        async def on_wake(msg: Msg) -> None:
            wake = events_pb2.ModelWake.FromString(msg.data)
            if self.is_leader:
                await autoscaler.wake(wake.model)

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
                await autoscaler.tick()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._supervisor.close()
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
