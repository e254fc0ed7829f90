"""End-to-end control path: api handler -> KV -> scheduler -> agent commands -> routes.

A real nats-server (temp dir, free port), the real api ``ControlHandler`` writing Servers and
Models into KV as ``modelplane apply`` does, the real scheduler App (it must win its leader lease
first), and lightweight responders standing in for the placement agents: one wildcard
subscription answers every replica's load/unload command with ``CommandReply(accepted=True)``
and publishes the LOADED/UNLOADED report, as a real agent does after MLServer loaded the model.
Replicas register in KV_REPLICAS as agents do. The clock runs from the first Model apply until
every model has a route with at least one endpoint (watched on KV_ROUTES).

Everything runs in one process on one event loop, as a small all-in-one deployment would: the
api applies compete with the scheduler for the CPU. ``apply_rates`` measures the api alone
(no scheduler), applying one model at a time and with ``APPLY_CONCURRENCY`` clients, so the
apply figure of the full run can be read against what the api handler itself can do.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from modelplane.libs import subjects
from modelplane.libs.auth.tokens import Principal
from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.resources.defaults import MLSERVER_CAPABILITIES
from modelplane.libs.resources.types import Meta, Model, ModelSpec, Server, ServerSpec
from modelplane.libs.store import TypedBucket, connect, disconnect, ensure_buckets
from modelplane.proto import agent_pb2, state_pb2
from modelplane.services.api.handler import ControlHandler
from modelplane.services.scheduler.app import SchedulerApp
from modelplane.services.scheduler.settings import SchedulerSettings

MI = 1 << 20
GI = 1 << 30
# Bounded concurrency of the api applies (a CLI applying a directory of manifests).
APPLY_CONCURRENCY = 32

# The benchmark applies as an admin would (the handler checks the role of every call).
BENCH_ADMIN = Principal("bench", "admin")


@dataclass(frozen=True, slots=True)
class EndToEndResult:
    models: int
    servers: int
    replicas_per_server: int
    apply_seconds: float
    total_seconds: float
    routed: int
    loads: int


class StubAgents:
    """Answers every replica's load/unload commands and reports the outcome, like a real agent."""

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._subs: list[Subscription] = []
        self.loads = 0

    async def start(self) -> None:
        for command in ("load", "unload"):
            subject = subjects.agent_command("*", 0, command).replace(".0.", ".*.")
            self._subs.append(await self._nc.subscribe(subject, cb=self._on_command))

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs = []

    async def _on_command(self, msg: Msg) -> None:
        # modelplane.agent.<server>.<index>.<load|unload>
        *_, server, index, command = msg.subject.split(".")
        if command == "load":
            load = agent_pb2.LoadModelCommand.FromString(msg.data)
            model, version, outcome = load.model, load.version, agent_pb2.OUTCOME_LOADED
            self.loads += 1
        else:
            unload = agent_pb2.UnloadModelCommand.FromString(msg.data)
            model, version, outcome = unload.model, unload.version, agent_pb2.OUTCOME_UNLOADED
        await msg.respond(agent_pb2.CommandReply(accepted=True).SerializeToString())
        report = agent_pb2.ModelReplicaReport(
            server=server,
            index=int(index),
            incarnation=f"bench-{server}-{index}",
            model=model,
            version=version,
            outcome=outcome,
        )
        await self._nc.publish(subjects.AGENT_REPORTS, report.SerializeToString())


async def _register_replicas(nc: NATS, servers: list[str], replicas: int) -> None:
    bucket = await TypedBucket.open(nc.jetstream(), subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
    for server in servers:
        for index in range(replicas):
            info = state_pb2.ReplicaInfo(
                server=server,
                index=index,
                http_endpoint=f"127.0.0.1:{20000 + index}",
                grpc_endpoint=f"127.0.0.1:{21000 + index}",
                capabilities=list(MLSERVER_CAPABILITIES),
                memory_bytes=16 * GI,
                incarnation=f"bench-{server}-{index}",
            )
            await bucket.put(subjects.replica_key(server, index), info)


async def _wait_routed(nc: NATS, names: set[str], routed: set[str], timeout: float) -> None:
    """Watch KV_ROUTES until every model in ``names`` has an endpoint (``routed`` fills up)."""
    bucket = await TypedBucket.open(nc.jetstream(), subjects.KV_ROUTES, state_pb2.ModelRoute)

    async def watch() -> None:
        async for change in bucket.watch():
            if change is None or change.value is None:
                continue
            if any(v.endpoints for v in change.value.versions):
                routed.add(change.key)
                if routed >= names:
                    return

    await asyncio.wait_for(watch(), timeout)


def _model(i: int, name: str) -> Model:
    spec = ModelSpec(
        storage_uri=f"file:///models/{name}",
        requirements=("sklearn",) if i % 2 else ("xgboost",),
        memory_bytes=(32, 64, 128)[i % 3] * MI,
        replicas=1 + (i % 4 == 0),
    )
    return Model(Meta(name), spec)


@dataclass(frozen=True, slots=True)
class ApplyRates:
    models: int
    sequential_per_second: float
    concurrent_per_second: float


async def apply_rates(models: int = 1000) -> ApplyRates:
    """Model applies per second through the api handler with nothing else running."""
    with tempfile.TemporaryDirectory(prefix="modelplane-bench-") as tmp:
        nats = EmbeddedNats(store_dir=Path(tmp) / "nats", port=free_port(), log_file=Path(tmp) / "nats.log")
        await nats.start()
        nc: NATS | None = None
        api: ControlHandler | None = None
        try:
            nc = await connect(nats.url, name="bench")
            await ensure_buckets(nc.jetstream())
            api = await ControlHandler.open(nc.jetstream(), nc)
            start = time.perf_counter()
            for i in range(models):
                await api.apply(BENCH_ADMIN, _model(i, f"sequential-{i:05d}"))
            sequential = models / (time.perf_counter() - start)
            gate = asyncio.Semaphore(APPLY_CONCURRENCY)

            async def apply(i: int) -> None:
                assert api is not None
                async with gate:
                    await api.apply(BENCH_ADMIN, _model(i, f"concurrent-{i:05d}"))

            start = time.perf_counter()
            await asyncio.gather(*(apply(i) for i in range(models)))
            concurrent = models / (time.perf_counter() - start)
            return ApplyRates(models, sequential, concurrent)
        finally:
            if api is not None:
                await api.close()
            await disconnect(nc)
            await nats.stop()


async def run(
    models: int = 1000, servers: int = 10, replicas: int = 10, timeout: float = 600.0
) -> EndToEndResult:
    with tempfile.TemporaryDirectory(prefix="modelplane-bench-") as tmp:
        nats = EmbeddedNats(store_dir=Path(tmp) / "nats", port=free_port(), log_file=Path(tmp) / "nats.log")
        await nats.start()
        nc: NATS | None = None
        agents: StubAgents | None = None
        scheduler: SchedulerApp | None = None
        api: ControlHandler | None = None
        try:
            nc = await connect(nats.url, name="bench")
            js = nc.jetstream()
            await ensure_buckets(js)
            api = await ControlHandler.open(js, nc)
            server_names = [f"mlserver-{i:02d}" for i in range(servers)]
            for name in server_names:
                await api.apply(BENCH_ADMIN, Server(Meta(name), ServerSpec("mlserver", replicas=replicas)))
            agents = StubAgents(nc)
            await agents.start()
            await _register_replicas(nc, server_names, replicas)
            settings = SchedulerSettings.model_validate({"nats_url": nats.url, "heartbeat_timeout": 600})
            scheduler = SchedulerApp(settings)
            await scheduler.start()
            deadline = time.monotonic() + 30
            while scheduler.handler is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("the scheduler did not become leader within 30 s")
                await asyncio.sleep(0.05)

            names = [f"model-{i:05d}" for i in range(models)]
            routed: set[str] = set()
            waiter = asyncio.ensure_future(_wait_routed(nc, set(names), routed, timeout))
            gate = asyncio.Semaphore(APPLY_CONCURRENCY)

            async def apply(i: int, name: str) -> None:
                assert api is not None
                async with gate:
                    await api.apply(BENCH_ADMIN, _model(i, name))

            start = time.perf_counter()
            try:
                await asyncio.gather(*(apply(i, n) for i, n in enumerate(names)))
                applied = time.perf_counter() - start
                await waiter
            finally:
                waiter.cancel()
            total = time.perf_counter() - start
            return EndToEndResult(models, servers, replicas, applied, total, len(routed), agents.loads)
        finally:
            if scheduler is not None:
                await scheduler.close()
            if agents is not None:
                await agents.stop()
            if api is not None:
                await api.close()
            await disconnect(nc)
            await nats.stop()
