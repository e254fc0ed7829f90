"""Overcommit in the agent, with a real MLServer: models beyond the replica's memory stay
registered while the least recently used are unloaded from the server, and ``ensure`` (what the
gateway asks on a miss) makes one resident again."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.resources.types import Meta, Server, ServerSpec
from modelplane.proto import agent_pb2, resources_pb2
from modelplane.services.placement.app import App as PlacementApp
from modelplane.services.placement.handler import PlacementHandler
from modelplane.services.storage.app import App as StorageApp
from tests.helpers.iris import IrisModel, build_iris_model
from tests.placement.conftest import Reports, agent_settings, eventually, put_server

MIB = 1024 * 1024
LOAD_OUTCOMES = {agent_pb2.OUTCOME_LOADED, agent_pb2.OUTCOME_LOAD_FAILED}


@pytest.fixture
async def tight_agent(
    nats_server: EmbeddedNats, js: JetStreamContext, storage: StorageApp, tmp_path: Path
) -> AsyncIterator[PlacementApp]:
    """An agent whose replica has 20 MiB of memory (room for two 10 MiB models)."""
    await put_server(
        js, Server(meta=Meta(name="tight"), spec=ServerSpec(server_config="mlserver", memory_bytes=20 * MIB))
    )
    app = PlacementApp(agent_settings(nats_server, tmp_path, server="tight"))
    await app.start()
    try:
        await app.wait_started()
        yield app
    finally:
        await app.close()


def handler_of(app: PlacementApp) -> PlacementHandler:
    assert app.handler is not None
    return app.handler


async def load(nc: NATS, reports: Reports, model: str, iris: IrisModel) -> None:
    spec = resources_pb2.ModelSpec(
        storage_uri=f"file://{iris.path}", requirements=["sklearn"], memory_bytes=10 * MIB
    )
    command = agent_pb2.LoadModelCommand(model=model, version=1, spec=spec)
    msg = await nc.request(subjects.agent_command("tight", 0, "load"), command.SerializeToString(), timeout=5)
    reply = agent_pb2.CommandReply.FromString(msg.data)
    assert reply.accepted, reply.reason
    report = await reports.wait_for(model, LOAD_OUTCOMES, timeout=60)
    assert report.outcome == agent_pb2.OUTCOME_LOADED, report.message


async def ensure(nc: NATS, model: str) -> agent_pb2.CommandReply:
    command = agent_pb2.EnsureLoadedCommand(model=model, version=1)
    msg = await nc.request(
        subjects.agent_command("tight", 0, "ensure"), command.SerializeToString(), timeout=60
    )
    return agent_pb2.CommandReply.FromString(msg.data)


async def ready_on_server(app: PlacementApp) -> set[str]:
    """What MLServer itself has in memory (READY in its repository index)."""
    assert app.runtime is not None
    url = f"http://{app.runtime.endpoints.local_http}/v2/repository/index"
    async with aiohttp.ClientSession() as http, http.post(url, json={}) as resp:
        return {m["name"] for m in await resp.json() if m.get("state") == "READY"}


async def test_least_recently_used_is_evicted_and_reloaded_on_ensure(
    tight_agent: PlacementApp, nc: NATS, reports: Reports, tmp_path: Path
) -> None:
    """The third model evicts the least recently used one; ensure brings it back, evicting the next."""
    iris = build_iris_model(tmp_path / "iris")
    handler = handler_of(tight_agent)
    await load(nc, reports, "a", iris)
    await load(nc, reports, "b", iris)
    assert await ready_on_server(tight_agent) == {"a_1", "b_1"}

    # The gateway reports a request for a_1: b_1 becomes the least recently used.
    usage = agent_pb2.ModelUsage(server_model_names=["a_1"])
    await nc.publish(subjects.agent_usage("tight", 0), usage.SerializeToString())

    async def a_used_last() -> bool:
        return handler.eviction_order == ["b_1", "a_1"]

    await eventually(a_used_last)

    await load(nc, reports, "c", iris)
    assert await ready_on_server(tight_agent) == {"a_1", "c_1"}
    assert handler.loaded_models == ["a_1", "b_1", "c_1"], "an evicted model stays registered"
    assert (tight_agent.state_dir / "models" / "b_1" / "model-settings.json").exists()

    reply = await ensure(nc, "b")
    assert reply.accepted, reply.reason
    assert await ready_on_server(tight_agent) == {"b_1", "c_1"}, "a_1 was now the least recently used"
    assert handler.loaded_models == ["a_1", "b_1", "c_1"]

    # Ensuring a resident model is a no-op that counts as use.
    assert (await ensure(nc, "c")).accepted
    assert handler.eviction_order == ["b_1", "c_1"]


async def test_ensure_refuses_a_model_that_is_not_registered(tight_agent: PlacementApp, nc: NATS) -> None:
    """The gateway's ensure for a model this replica never loaded is refused with a reason."""
    reply = await ensure(nc, "stranger")
    assert not reply.accepted
    assert "stranger_1 is not loaded on this replica" in reply.reason


async def test_unloading_an_evicted_model_unregisters_it(
    tight_agent: PlacementApp, nc: NATS, reports: Reports, tmp_path: Path
) -> None:
    """An evicted model's unload succeeds without the server, and removes its folder."""
    iris = build_iris_model(tmp_path / "iris")
    for model in ("a", "b", "c"):
        await load(nc, reports, model, iris)
    handler = handler_of(tight_agent)
    evicted = sorted(set(handler.loaded_models) - set(handler.resident_models))
    assert evicted == ["a_1"]
    command = agent_pb2.UnloadModelCommand(model="a", version=1)
    msg = await nc.request(
        subjects.agent_command("tight", 0, "unload"), command.SerializeToString(), timeout=5
    )
    assert agent_pb2.CommandReply.FromString(msg.data).accepted
    report = await reports.wait_for("a", {agent_pb2.OUTCOME_UNLOADED, agent_pb2.OUTCOME_UNLOAD_FAILED})
    assert report.outcome == agent_pb2.OUTCOME_UNLOADED, report.message
    assert handler.loaded_models == ["b_1", "c_1"]
    assert not (tight_agent.state_dir / "models" / "a_1").exists()
    marker = json.loads((tight_agent.state_dir / "models" / "b_1" / ".modelplane-model.json").read_text())
    assert marker == {"memory_bytes": 10 * MIB}
