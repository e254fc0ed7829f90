"""The local replica launcher keeps one agent process per desired Server replica."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.resources import convert
from modelplane.libs.resources.types import Meta, Server, ServerSpec
from modelplane.libs.store import TypedBucket
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import resources_pb2
from modelplane.up.children import Child
from modelplane.up.launcher import ReplicaLauncher


def sleeper_child(
    name: str, argv: Sequence[str], env: Mapping[str, str], sup: TaskSupervisor, stop_timeout: float
) -> Child:
    """A real process standing in for an agent: the launcher's job is process bookkeeping."""
    return Child(
        name, [sys.executable, "-c", "import time; time.sleep(120)"], env, sup, stop_timeout=stop_timeout
    )


async def _until(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_replicas_follow_the_server_spec(js: JetStreamContext, tmp_path: Path) -> None:
    """Scaling a Server up starts agents 0..n-1; down stops the highest; deleting stops all."""
    servers = await TypedBucket.open(js, subjects.KV_SERVERS, resources_pb2.Server)
    sup = TaskSupervisor("test")
    launcher = ReplicaLauncher(js, tmp_path, {}, sup, make_child=sleeper_child)
    await launcher.start()

    def server(replicas: int) -> resources_pb2.Server:
        return convert.server_to_pb(
            Server(meta=Meta(name="small"), spec=ServerSpec("mlserver", replicas=replicas))
        )

    await servers.put("small", server(2))
    await _until(lambda: launcher.running() == [("small", 0), ("small", 1)])
    await servers.put("small", server(1))
    await _until(lambda: launcher.running() == [("small", 0)])
    await servers.delete("small")
    await _until(lambda: launcher.running() == [])
    await launcher.stop()
    await sup.close()
