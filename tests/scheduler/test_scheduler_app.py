"""The scheduler service on real NATS with lightweight agents that answer on real subjects."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from modelplane.libs import states, subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.store import TypedBucket
from modelplane.proto import agent_pb2, resources_pb2, state_pb2
from modelplane.services.scheduler.app import SchedulerApp
from modelplane.services.scheduler.settings import SchedulerSettings

MLSERVER_CAPS = ("mlserver", "sklearn", "xgboost")


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Poll ``check`` until it is true or the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.05)


class Agent:
    """Registers a replica in KV, answers load/unload commands and publishes the outcome."""

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        server: str,
        index: int,
        *,
        memory_bytes: int = 1 << 30,
        capabilities: tuple[str, ...] = MLSERVER_CAPS,
        journal: list[str] | None = None,
    ) -> None:
        self.nc, self.js, self.server, self.index = nc, js, server, index
        self.incarnation = uuid.uuid4().hex
        self.loads: list[tuple[str, int]] = []
        self.unloads: list[tuple[str, int]] = []
        self.loaded: set[str] = set()
        self.memory_bytes = memory_bytes
        self.capabilities = capabilities
        self.draining = False
        # Every load is answered with this outcome (None: accept and report nothing yet).
        self.load_outcome: agent_pb2.ModelReplicaOutcome.ValueType | None = agent_pb2.OUTCOME_LOADED
        # Shared across agents: "load <model>_<version> @<server>.<index>" in arrival order.
        self.journal = journal if journal is not None else []
        self._subs: list[Subscription] = []

    @property
    def key(self) -> str:
        return subjects.replica_key(self.server, self.index)

    async def start(self) -> None:
        for command, cb in (("load", self._on_load), ("unload", self._on_unload)):
            subject = subjects.agent_command(self.server, self.index, command)
            self._subs.append(await self.nc.subscribe(subject, cb=cb))
        await self.register()

    async def register(self) -> None:
        bucket = await TypedBucket.open(self.js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
        info = state_pb2.ReplicaInfo(
            server=self.server,
            index=self.index,
            http_endpoint=f"127.0.0.1:{18000 + self.index}",
            grpc_endpoint=f"127.0.0.1:{19000 + self.index}",
            capabilities=list(self.capabilities),
            memory_bytes=self.memory_bytes,
            incarnation=self.incarnation,
            loaded_models=sorted(self.loaded),
            draining=self.draining,
        )
        await bucket.put(self.key, info)

    async def deregister(self) -> None:
        await self.stop()
        bucket = await TypedBucket.open(self.js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
        await bucket.delete(self.key)

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs = []

    async def report(
        self, model: str, version: int, outcome: agent_pb2.ModelReplicaOutcome.ValueType
    ) -> None:
        """Publish a report about ``model`` version ``version`` on this replica."""
        if outcome == agent_pb2.OUTCOME_LOADED:
            self.loaded.add(f"{model}_{version}")
        report = agent_pb2.ModelReplicaReport(
            server=self.server,
            index=self.index,
            incarnation=self.incarnation,
            model=model,
            version=version,
            outcome=outcome,
            message="load failed on purpose" if outcome == agent_pb2.OUTCOME_LOAD_FAILED else "",
        )
        await self.nc.publish(subjects.AGENT_REPORTS, report.SerializeToString())

    async def _on_load(self, msg: Msg) -> None:
        command = agent_pb2.LoadModelCommand.FromString(msg.data)
        self.loads.append((command.model, command.version))
        self.journal.append(f"load {command.model}_{command.version} @{self.key}")
        await msg.respond(agent_pb2.CommandReply(accepted=True).SerializeToString())
        if self.load_outcome is not None:
            await self.report(command.model, command.version, self.load_outcome)

    async def _on_unload(self, msg: Msg) -> None:
        command = agent_pb2.UnloadModelCommand.FromString(msg.data)
        self.unloads.append((command.model, command.version))
        self.journal.append(f"unload {command.model}_{command.version} @{self.key}")
        await msg.respond(agent_pb2.CommandReply(accepted=True).SerializeToString())
        self.loaded.discard(f"{command.model}_{command.version}")
        await self.report(command.model, command.version, agent_pb2.OUTCOME_UNLOADED)


@asynccontextmanager
async def running_scheduler(
    nats_server: EmbeddedNats, heartbeat_timeout: float = 600, **settings: object
) -> AsyncIterator[SchedulerApp]:
    """A started scheduler that leads (its machinery is running) for the duration of the block."""
    config = SchedulerSettings.model_validate(
        {
            "nats_url": nats_server.url,
            "heartbeat_timeout": heartbeat_timeout,
            "retry_interval": 0.5,
            "command_timeout": 2,
            **settings,
        }
    )
    app = SchedulerApp(config)
    try:
        await app.start()

        async def leading() -> bool:
            return app.handler is not None

        await eventually(leading)
        yield app
    finally:
        await app.close()


async def put_server(
    js: JetStreamContext, name: str, replicas: int, min_replicas: int = 0, max_replicas: int = 0
) -> None:
    bucket = await TypedBucket.open(js, subjects.KV_SERVERS, resources_pb2.Server)
    server = resources_pb2.Server(
        meta=resources_pb2.ObjectMeta(name=name, generation=1),
        spec=resources_pb2.ServerSpec(
            server_config="mlserver", replicas=replicas, min_replicas=min_replicas, max_replicas=max_replicas
        ),
    )
    await bucket.put(name, server)


async def put_model(
    js: JetStreamContext,
    name: str,
    uri: str = "file:///models/iris",
    replicas: int = 1,
    requirements: tuple[str, ...] = ("sklearn",),
    min_replicas: int = 0,
    memory_bytes: int = 1 << 20,
) -> None:
    bucket = await TypedBucket.open(js, subjects.KV_MODELS, resources_pb2.Model)
    model = resources_pb2.Model(
        meta=resources_pb2.ObjectMeta(name=name, generation=1),
        spec=resources_pb2.ModelSpec(
            storage_uri=uri,
            requirements=list(requirements),
            replicas=replicas,
            min_replicas=min_replicas,
            memory_bytes=memory_bytes,
        ),
    )
    await bucket.put(name, model)


async def placement(js: JetStreamContext, name: str) -> state_pb2.ModelPlacement | None:
    bucket = await TypedBucket.open(js, subjects.KV_PLACEMENTS, state_pb2.ModelPlacement)
    found = await bucket.try_get(name)
    return found.value if found else None


async def route(js: JetStreamContext, name: str) -> state_pb2.ModelRoute | None:
    bucket = await TypedBucket.open(js, subjects.KV_ROUTES, state_pb2.ModelRoute)
    found = await bucket.try_get(name)
    return found.value if found else None


def available_on(p: state_pb2.ModelPlacement | None, version: int) -> list[tuple[str, int]]:
    if p is None:
        return []
    return [
        (a.server, a.index)
        for v in p.versions
        if v.version == version
        for a in v.replicas
        if a.state == states.AVAILABLE
    ]


async def agents(nc: NATS, js: JetStreamContext, server: str, count: int, **options: Any) -> list[Agent]:
    started = [Agent(nc, js, server, i, **options) for i in range(count)]
    for agent in started:
        await agent.start()
    return started


async def test_model_is_placed_on_matching_replica_and_routed(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """A model lands on the capable replica, becomes Available and gets a route with its endpoints."""
    await put_server(js, "mlserver", 1)
    [agent] = await agents(nc, js, "mlserver", 1)
    async with running_scheduler(nats_server):
        await put_model(js, "iris")

        async def placed() -> bool:
            return available_on(await placement(js, "iris"), 1) == [("mlserver", 0)]

        await eventually(placed)
        r = await route(js, "iris")
        assert r is not None
        assert [v.server_model_name for v in r.versions] == ["iris_1"]
        assert r.versions[0].endpoints[0].http_endpoint == "127.0.0.1:18000"
        assert agent.loads == [("iris", 1)]
    await agent.stop()


async def test_schedule_failed_names_missing_capability(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """A model nobody can serve is ScheduleFailed with a reason naming the capability; its route is empty."""
    await put_server(js, "mlserver", 1)
    [agent] = await agents(nc, js, "mlserver", 1)
    async with running_scheduler(nats_server):
        await put_model(js, "tf", requirements=("tensorflow",))

        async def failed() -> bool:
            p = await placement(js, "tf")
            return p is not None and bool(p.versions) and p.versions[-1].schedule_failed

        await eventually(failed)
        p = await placement(js, "tf")
        assert p is not None
        assert "server mlserver: missing capability tensorflow" in p.versions[-1].reason
        r = await route(js, "tf")
        assert r is not None
        assert list(r.versions) == []
        assert agent.loads == []
    await agent.stop()


async def test_replica_deleted_moves_model(nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS) -> None:
    """When a replica's key is deleted its model is loaded on another replica and the route follows."""
    await put_server(js, "mlserver", 2)
    first, second = await agents(nc, js, "mlserver", 2)
    async with running_scheduler(nats_server):
        await put_model(js, "iris")

        async def on_first() -> bool:
            return available_on(await placement(js, "iris"), 1) == [("mlserver", 0)]

        await eventually(on_first)
        await first.deregister()

        async def on_second() -> bool:
            return available_on(await placement(js, "iris"), 1) == [("mlserver", 1)]

        await eventually(on_second)
        r = await route(js, "iris")
        assert r is not None
        assert [e.index for e in r.versions[0].endpoints] == [1]
    await second.stop()


async def test_spec_change_loads_version_2_before_unloading_version_1(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """A new storage URI makes version 2; version 1 is unloaded only after version 2 is available."""
    await put_server(js, "mlserver", 1)
    [agent] = await agents(nc, js, "mlserver", 1)
    async with running_scheduler(nats_server):
        await put_model(js, "iris")

        async def v1() -> bool:
            return bool(available_on(await placement(js, "iris"), 1))

        await eventually(v1)
        await put_model(js, "iris", uri="file:///models/iris-v2")

        async def only_v2() -> bool:
            p = await placement(js, "iris")
            return p is not None and [v.version for v in p.versions] == [2] and bool(available_on(p, 2))

        await eventually(only_v2)
        assert agent.loads == [("iris", 1), ("iris", 2)]
        assert agent.unloads == [("iris", 1)]
        r = await route(js, "iris")
        assert r is not None
        assert [v.version for v in r.versions] == [2]
    await agent.stop()


async def test_model_deletion_unloads_and_removes_keys(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """Deleting a model unloads it and then deletes its placement and route keys."""
    await put_server(js, "mlserver", 1)
    [agent] = await agents(nc, js, "mlserver", 1)
    async with running_scheduler(nats_server):
        await put_model(js, "iris")

        async def v1() -> bool:
            return bool(available_on(await placement(js, "iris"), 1))

        await eventually(v1)
        models = await TypedBucket.open(js, subjects.KV_MODELS, resources_pb2.Model)
        await models.delete("iris")

        async def gone() -> bool:
            return await placement(js, "iris") is None and await route(js, "iris") is None

        await eventually(gone)
        assert agent.unloads == [("iris", 1)]
    await agent.stop()


async def test_restart_resumes_without_resending_loads(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """A restarted scheduler keeps Available replicas as they are and only loads what is new."""
    await put_server(js, "mlserver", 2)
    first, second = await agents(nc, js, "mlserver", 2)
    async with running_scheduler(nats_server):
        await put_model(js, "iris")

        async def v1() -> bool:
            return available_on(await placement(js, "iris"), 1) == [("mlserver", 0)]

        await eventually(v1)
    async with running_scheduler(nats_server):
        # A scaling-only change queues behind the restart's own reconciliation of the model.
        await put_model(js, "iris", replicas=2)

        async def both() -> bool:
            return sorted(available_on(await placement(js, "iris"), 1)) == [("mlserver", 0), ("mlserver", 1)]

        await eventually(both)
        assert first.loads == [("iris", 1)]
        assert second.loads == [("iris", 1)]
    await first.stop()
    await second.stop()


async def test_restarted_replica_gets_its_models_again(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """A replica that comes back with a new incarnation and without the model is sent the load again."""
    await put_server(js, "mlserver", 1)
    [agent] = await agents(nc, js, "mlserver", 1)
    async with running_scheduler(nats_server):
        await put_model(js, "iris")

        async def v1() -> bool:
            return bool(available_on(await placement(js, "iris"), 1))

        await eventually(v1)
        agent.incarnation = uuid.uuid4().hex
        agent.loaded.clear()
        await agent.register()

        async def reloaded() -> bool:
            return agent.loads == [("iris", 1), ("iris", 1)] and bool(
                available_on(await placement(js, "iris"), 1)
            )

        await eventually(reloaded)
    await agent.stop()


async def test_silent_replica_loses_its_models(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """A replica without heartbeats for the timeout counts as gone; its model moves to a live replica."""
    await put_server(js, "mlserver", 2)
    silent, alive = await agents(nc, js, "mlserver", 2)
    beat = agent_pb2.Heartbeat(server="mlserver", index=1, incarnation=alive.incarnation).SerializeToString()
    async with running_scheduler(nats_server, heartbeat_timeout=1.0):
        await put_model(js, "iris")

        async def on_alive() -> bool:
            # Only replica 1 beats (once per poll); replica 0 falls silent.
            await nc.publish(subjects.AGENT_HEARTBEATS, beat)
            return available_on(await placement(js, "iris"), 1) == [("mlserver", 1)]

        await eventually(on_alive)
    await silent.stop()
    await alive.stop()
