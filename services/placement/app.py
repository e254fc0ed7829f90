"""Composition root of the placement agent (``modelplane run placement``).

Design: ``start()`` connects to NATS and returns; the bring-up runs as a supervised task because
it may wait a long time (for the Server/ServerConfig to be applied, for the runtime to start) and
a signal must still be able to stop the agent meanwhile. Bring-up: resolve the replica profile ->
start the runtime (or adopt the one a crashed predecessor left running, see
runtimes/server_process.py, or attach to a sidecar) -> learn what it already holds -> take
commands -> register in KV -> heartbeats. ``close()`` reverses it: stop taking commands,
deregister (so the scheduler moves models at once), cancel work and heartbeats, stop the
runtime's process group, close NATS.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
import structlog
from nats.aio.client import Client as NATS

from modelplane.libs import subjects
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.store import TypedBucket, connect, disconnect, ensure_buckets
from modelplane.libs.tasks import KeyedWorkers, TaskSupervisor
from modelplane.proto import lease_pb2, resources_pb2, state_pb2
from modelplane.services.placement.handler import PlacementHandler
from modelplane.services.placement.model_server import ModelServerClient
from modelplane.services.placement.nats_adapter import CommandSubscriber, NatsReports, heartbeat_loop
from modelplane.services.placement.profile import wait_for_profile
from modelplane.services.placement.registration import ReplicaRegistration
from modelplane.services.placement.runtimes import Runtime, build_runtime
from modelplane.services.placement.runtimes.factory import model_repository
from modelplane.services.placement.settings import PlacementSettings
from modelplane.services.placement.storage_client import StorageClient
from modelplane.services.placement.types import ReplicaId, ReplicaProfile

log = structlog.get_logger(__name__)


class App:
    """One placement agent beside one server replica."""

    name = "placement"

    def __init__(self, settings: PlacementSettings) -> None:
        self.settings = settings
        # close() first drains (up to drain_timeout), then stops within the usual timeout.
        self.shutdown_timeout = settings.shutdown_timeout + settings.drain_timeout
        self.state_dir: Path = settings.resolved_state_dir()
        self.replica = ReplicaId(server=settings.server, index=settings.index, incarnation=uuid.uuid4().hex)
        self.runtime: Runtime | None = None
        self.handler: PlacementHandler | None = None
        self.registration: ReplicaRegistration | None = None
        self._supervisor = TaskSupervisor("placement")
        self._nc: NATS | None = None
        self._leases: TypedBucket[lease_pb2.Lease] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._commands: CommandSubscriber | None = None
        self._started: asyncio.Future[None] | None = None
        # Resolved with the reason when the agent cannot go on (its runtime process died).
        self._failed: asyncio.Future[str] | None = None
        self._closed = False

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._nc = await connect(
            self.settings.nats_url,
            name=f"modelplane-placement-{self.replica.server}",
            creds=self.settings.nats_creds,
        )
        self._session = aiohttp.ClientSession()
        self._started = asyncio.get_running_loop().create_future()
        self._failed = asyncio.get_running_loop().create_future()
        self._supervisor.spawn("bring-up", self._bring_up(self._nc, self._session, self._started))

    async def wait_started(self) -> None:
        """Return once the replica is registered and takes commands; raise why bring-up failed."""
        assert self._started is not None, "start() first"
        await asyncio.shield(self._started)

    async def wait_failed(self) -> str:
        """Return (with the reason) once the agent cannot go on; the process runner then exits 1."""
        assert self._failed is not None, "start() first"
        return await asyncio.shield(self._failed)

    async def _watch_runtime(self, runtime: Runtime) -> None:
        """A runtime process that exits while we run takes the replica down with it, loudly.

        The replica's key is deleted at once (so the scheduler moves its models now rather than
        after the heartbeat timeout) and the agent fails, so `up` or Kubernetes restarts it.
        """
        ended = await runtime.wait_exit()
        if ended is None or self._closed:
            return
        log.error(
            "runtime_exited_unexpectedly",
            runtime=runtime.name,
            exit_code=ended.code,
            last_log_lines=ended.log_tail,
        )
        if self.handler is not None:
            self.handler.stop_accepting()
        if self.registration is not None:
            try:
                await self.registration.deregister()
            except Exception as exc:  # NATS may be gone; the heartbeat timeout then tells the scheduler
                log.warning("replica_deregister_failed", error=str(exc))
        if self._failed is not None and not self._failed.done():
            self._failed.set_result(f"{runtime.name} exited unexpectedly with code {ended.code}")

    async def _bring_up(
        self, nc: NATS, session: aiohttp.ClientSession, started: asyncio.Future[None]
    ) -> None:
        structlog.contextvars.bind_contextvars(server=self.replica.server, index=self.replica.index)
        try:
            await self._bring_up_steps(nc, session)
        except asyncio.CancelledError:
            if not started.done():
                started.cancel()
            raise
        except Exception as exc:
            log.error("placement_bring_up_failed", error=str(exc))
            if not started.done():
                started.set_exception(exc)
            return
        started.set_result(None)

    async def _bring_up_steps(self, nc: NATS, session: aiohttp.ClientSession) -> None:
        js = nc.jetstream()
        await ensure_buckets(js)
        profile = await wait_for_profile(
            await TypedBucket.open(js, subjects.KV_SERVERS, resources_pb2.Server),
            await TypedBucket.open(js, subjects.KV_SERVER_CONFIGS, resources_pb2.ServerConfig),
            self.replica.server,
            self.settings.config_poll_interval,
        )
        runtime = build_runtime(self.settings, profile, self.state_dir)
        self.runtime = runtime
        client = ModelServerClient(session, runtime.endpoints.local_http, self.settings.model_load_timeout)
        unavailable = runtime.unavailable_reason()
        if unavailable:
            log.warning("runtime_unavailable", runtime=runtime.name, reason=unavailable)
        else:
            await runtime.start(client.ready, self.settings.runtime_start_timeout)
        self._leases = await TypedBucket.open(js, subjects.KV_LEASES, lease_pb2.Lease)
        self.registration = ReplicaRegistration(
            await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo),
            self._replica_info(profile, runtime, unavailable),
        )
        repo = model_repository(self.state_dir)
        repo.mkdir(parents=True, exist_ok=True)
        handler = PlacementHandler(
            repo=repo,
            layout=runtime.layout,
            model_server=client,
            storage=StorageClient(nc, self.settings.fetch_timeout),
            reports=NatsReports(nc, self.replica),
            loaded_sink=self.registration,
            workers=KeyedWorkers(self._supervisor, "model"),
            unavailable_reason=unavailable,
            memory_bytes=profile.memory_bytes,
            server_parallel_workers=profile.parallel_workers,
        )
        self.handler = handler
        self.registration.info.loaded_models.extend(await handler.sync_loaded())
        # Listen for commands before registering: the scheduler may send a load the moment it
        # sees the registration, and a command nobody listens to yet would fail the model.
        self._commands = CommandSubscriber(
            nc, handler, self.replica, self._supervisor, self.settings.model_load_timeout
        )
        await self._commands.start()
        await self.registration.register()
        self._supervisor.spawn(
            "heartbeat", heartbeat_loop(nc, self.replica, self.settings.heartbeat_interval)
        )
        if not unavailable:
            self._supervisor.spawn("runtime-watch", self._watch_runtime(runtime))
        log.info(
            "placement_ready",
            runtime=runtime.name,
            http=runtime.endpoints.http,
            loaded=handler.loaded_models,
            unavailable=unavailable,
        )

    def _replica_info(
        self, profile: ReplicaProfile, runtime: Runtime, unavailable: str
    ) -> state_pb2.ReplicaInfo:
        return state_pb2.ReplicaInfo(
            server=self.replica.server,
            index=self.replica.index,
            # An unavailable runtime listens nowhere: advertise no endpoints.
            http_endpoint="" if unavailable else runtime.endpoints.http,
            grpc_endpoint="" if unavailable else runtime.endpoints.grpc,
            capabilities=list(profile.capabilities),
            memory_bytes=profile.memory_bytes,
            overcommit_percent=profile.overcommit_percent,
            incarnation=self.replica.incarnation,
            runtime=runtime.name,
            registered_at=now_rfc3339(),
            unavailable_reason=unavailable,
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._drain()
        if self.handler is not None:
            self.handler.stop_accepting()
        if self._commands is not None:
            await self._commands.close()
        if self.registration is not None:
            try:
                await self.registration.deregister()
            except Exception as exc:  # NATS may be gone; the heartbeat timeout then tells the scheduler
                log.warning("replica_deregister_failed", error=str(exc))
        await self._supervisor.close()
        if self.runtime is not None:
            await self.runtime.stop()
        if self._session is not None:
            await self._session.close()
        await disconnect(self._nc)
        if self._started is not None and not self._started.done():
            self._started.cancel()
        if self._failed is not None and not self._failed.done():
            self._failed.cancel()

    async def _drain(self) -> None:
        """Keep serving while the scheduler moves this replica's models away (Seldon's drain).

        The replica says it is draining (the scheduler then places replacements and unloads the
        models here once those are Available, so traffic never lacks a replica), takes no new
        models, and returns when none are left, when no scheduler holds the lease (nobody would
        move them: e.g. ``up`` stopping everything), or after ``drain_timeout``.
        """
        handler, registration = self.handler, self.registration
        if handler is None or registration is None or self.settings.drain_timeout <= 0:
            return
        if not handler.loaded_models or not await self._scheduler_active():
            return
        handler.start_draining()
        try:
            await registration.set_draining()
        except Exception as exc:  # NATS gone: nobody can move the models anyway
            log.warning("replica_drain_failed", error=str(exc) or repr(exc))
            return
        log.info("replica_drain_started", models=handler.loaded_models, timeout=self.settings.drain_timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.drain_timeout
        while handler.loaded_models:
            left = deadline - loop.time()
            if left <= 0:
                log.warning("replica_drain_timed_out", models=handler.loaded_models)
                return
            try:
                # Wake on a change, and at least every second to look at the lease.
                await asyncio.wait_for(handler.wait_loaded_changed(), min(left, 1.0))
            except TimeoutError:
                if not await self._scheduler_active():
                    log.info("replica_drain_stopped", reason="no scheduler is active")
                    return
        log.info("replica_drained")

    async def _scheduler_active(self) -> bool:
        """A scheduler holds the lease (a released lease keeps its key but names no holder)."""
        if self._leases is None:
            return False
        try:
            lease = await self._leases.try_get(subjects.SCHEDULER_LEASE)
        except Exception as exc:  # NATS gone
            log.warning("lease_read_failed", error=str(exc) or repr(exc))
            return False
        return lease is not None and bool(lease.value.holder)


def create() -> App:
    # pydantic fills the fields from the environment; mypy cannot see CommonSettings' defaults.
    return App(PlacementSettings())
