"""An agent whose runtime binary is missing: registered as unavailable, rejects loads, never hangs."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.resources import defaults
from modelplane.libs.store import TypedBucket
from modelplane.proto import agent_pb2, resources_pb2, state_pb2
from modelplane.services.placement.app import App as PlacementApp
from modelplane.services.placement.registration import ReplicaRegistration
from tests.placement.conftest import agent_settings, put_server, triton_server

pytestmark = pytest.mark.skipif(shutil.which("tritonserver") is not None, reason="tritonserver is installed")


async def test_unavailable_runtime_registers_with_reason(
    nats_server: EmbeddedNats, nc: NATS, js: JetStreamContext, tmp_path: Path
) -> None:
    """The agent waits for its Server, registers it unavailable, heartbeats, and rejects loads."""
    heartbeats: asyncio.Queue[agent_pb2.Heartbeat] = asyncio.Queue()

    async def on_heartbeat(msg: Msg) -> None:
        beat = agent_pb2.Heartbeat()
        beat.ParseFromString(msg.data)
        await heartbeats.put(beat)

    sub = await nc.subscribe(subjects.AGENT_HEARTBEATS, cb=on_heartbeat)
    app = PlacementApp(agent_settings(nats_server, tmp_path, server="triton"))
    await app.start()
    try:
        # Started before its Server exists: it waits instead of failing.
        await put_server(js, triton_server())
        await asyncio.wait_for(app.wait_started(), 10)

        bucket = await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
        info = (await bucket.get(subjects.replica_key("triton", 0))).value
        assert info.unavailable_reason == "runtime unavailable: tritonserver not found"
        assert info.runtime == "triton"
        assert tuple(info.capabilities) == defaults.TRITON_CAPABILITIES
        assert info.http_endpoint == ""

        beat = await asyncio.wait_for(heartbeats.get(), 10)
        assert (beat.server, beat.index, beat.incarnation) == ("triton", 0, app.replica.incarnation)

        command = agent_pb2.LoadModelCommand(
            model="m", version=1, spec=resources_pb2.ModelSpec(storage_uri=str(tmp_path))
        )
        msg = await nc.request(
            subjects.agent_command("triton", 0, "load"), command.SerializeToString(), timeout=5
        )
        reply = agent_pb2.CommandReply()
        reply.ParseFromString(msg.data)
        assert not reply.accepted
        assert reply.reason == "runtime unavailable: tritonserver not found"
    finally:
        await app.close()
        await sub.unsubscribe()
    assert await bucket.try_get(subjects.replica_key("triton", 0)) is None


async def test_close_while_waiting_for_server(
    nats_server: EmbeddedNats, js: JetStreamContext, tmp_path: Path
) -> None:
    """An agent still waiting for its Server closes promptly and cleanly."""
    app = PlacementApp(agent_settings(nats_server, tmp_path, server="nowhere"))
    await app.start()
    await app.close()
    with pytest.raises(asyncio.CancelledError):
        await app.wait_started()


async def test_agent_listens_for_commands_before_it_registers(
    nats_server: EmbeddedNats, nc: NATS, js: JetStreamContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the moment the replica is written to KV, its agent already answers commands: the scheduler
    acts on a registration at once, and a command nobody listens to would fail the model."""
    command = agent_pb2.LoadModelCommand(model="m", version=1, spec=resources_pb2.ModelSpec(storage_uri="x"))
    replies: list[agent_pb2.CommandReply] = []
    register = ReplicaRegistration.register

    async def register_after_probe(self: ReplicaRegistration) -> None:
        # A real request on the agent's subject; NATS fails it at once if nobody subscribed yet.
        msg = await nc.request(
            subjects.agent_command("triton", 0, "load"), command.SerializeToString(), timeout=5
        )
        reply = agent_pb2.CommandReply()
        reply.ParseFromString(msg.data)
        replies.append(reply)
        await register(self)

    monkeypatch.setattr(ReplicaRegistration, "register", register_after_probe)
    await put_server(js, triton_server())
    app = PlacementApp(agent_settings(nats_server, tmp_path, server="triton"))
    await app.start()
    try:
        await asyncio.wait_for(app.wait_started(), 10)
        assert [r.reason for r in replies] == ["runtime unavailable: tritonserver not found"]
    finally:
        await app.close()
