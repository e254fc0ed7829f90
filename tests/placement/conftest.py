"""Fixtures for the placement agent tests: desired state in KV, a storage service, report capture."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.resources import convert, defaults
from modelplane.libs.resources.types import Meta, Server, ServerSpec
from modelplane.libs.store import TypedBucket
from modelplane.proto import agent_pb2, resources_pb2
from modelplane.services.placement.app import App as PlacementApp
from modelplane.services.placement.settings import PlacementSettings
from modelplane.services.storage.app import App as StorageApp
from modelplane.services.storage.settings import StorageSettings


async def put_server(js: JetStreamContext, server: Server) -> None:
    """Store the built-in ServerConfigs and ``server`` in KV, as the api would."""
    configs = await TypedBucket.open(js, subjects.KV_SERVER_CONFIGS, resources_pb2.ServerConfig)
    for config in defaults.builtin_server_configs():
        await configs.put(config.meta.name, convert.server_config_to_pb(config))
    servers = await TypedBucket.open(js, subjects.KV_SERVERS, resources_pb2.Server)
    await servers.put(server.meta.name, convert.server_to_pb(server))


def triton_server() -> Server:
    return Server(meta=Meta(name="triton"), spec=ServerSpec(server_config="triton"))


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)


class Reports:
    """Every ModelReplicaReport published on AGENT_REPORTS, in arrival order."""

    def __init__(self) -> None:
        self.seen: list[agent_pb2.ModelReplicaReport] = []
        self._arrived = asyncio.Condition()

    async def on_msg(self, msg: Msg) -> None:
        report = agent_pb2.ModelReplicaReport()
        report.ParseFromString(msg.data)
        async with self._arrived:
            self.seen.append(report)
            self._arrived.notify_all()

    async def wait_for(
        self, model: str, outcomes: set[agent_pb2.ModelReplicaOutcome.ValueType], timeout: float = 30.0
    ) -> agent_pb2.ModelReplicaReport:
        """The first report for ``model`` whose outcome is one of ``outcomes``."""

        def found() -> agent_pb2.ModelReplicaReport | None:
            return next((r for r in self.seen if r.model == model and r.outcome in outcomes), None)

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: found() is not None), timeout)
        result = found()
        assert result is not None
        return result


@pytest.fixture
async def reports(nc: NATS) -> AsyncIterator[Reports]:
    collected = Reports()
    sub = await nc.subscribe(subjects.AGENT_REPORTS, cb=collected.on_msg)
    try:
        yield collected
    finally:
        await sub.unsubscribe()


@pytest.fixture
async def storage(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[StorageApp]:
    # The tests' model folders live under tmp_path: that is the one allowed local root.
    settings = StorageSettings(
        nats_url=nats_server.url, cache_dir=tmp_path / "storage-cache", local_roots=str(tmp_path)
    )
    app = StorageApp(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.close()


def agent_settings(nats_server: EmbeddedNats, tmp_path: Path, server: str = "mlserver") -> PlacementSettings:
    return PlacementSettings(
        nats_url=nats_server.url,
        server=server,
        index=0,
        state_dir=tmp_path / f"replica-{server}",
        heartbeat_interval=0.2,
        config_poll_interval=0.05,
        fetch_timeout=10,
        runtime_start_timeout=60,
    )


@pytest.fixture
async def mlserver_agent(
    nats_server: EmbeddedNats, js: JetStreamContext, storage: StorageApp, tmp_path: Path
) -> AsyncIterator[PlacementApp]:
    """A started agent for the default 'mlserver' Server, with a real MLServer it launched."""
    await put_server(js, defaults.default_server())
    app = PlacementApp(agent_settings(nats_server, tmp_path))
    await app.start()
    try:
        await app.wait_started()
        yield app
    finally:
        await app.close()
