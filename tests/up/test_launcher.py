"""The local replica launcher keeps one agent process per desired Server replica."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.process import ProcessRecord, start_time, write_record
from modelplane.libs.resources import convert
from modelplane.libs.resources.types import Meta, Server, ServerSpec
from modelplane.libs.store import TypedBucket
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import resources_pb2
from modelplane.up.children import Child
from modelplane.up.launcher import RUNTIME_RECORD, ReplicaLauncher


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


async def test_stop_sweeps_model_servers_left_by_crashed_agents(js: JetStreamContext, tmp_path: Path) -> None:
    """After the agents stop, a recorded server still alive is killed with its group; a record whose
    pid now names another process (different start time) kills nothing; both records are removed."""
    server = await asyncio.create_subprocess_exec("sleep", "120", start_new_session=True)
    bystander = await asyncio.create_subprocess_exec("sleep", "120", start_new_session=True)
    try:
        started = start_time(server.pid)
        bystander_started = start_time(bystander.pid)
        assert started is not None
        assert bystander_started is not None
        left = tmp_path / "replicas" / "small-0" / RUNTIME_RECORD
        reused = tmp_path / "replicas" / "small-1" / RUNTIME_RECORD
        write_record(left, ProcessRecord(pid=server.pid, start_time=started, fingerprint="f"))
        write_record(
            reused, ProcessRecord(pid=bystander.pid, start_time=bystander_started - 1, fingerprint="f")
        )
        sup = TaskSupervisor("test")
        launcher = ReplicaLauncher(js, tmp_path, {}, sup, make_child=sleeper_child)
        await launcher.start()
        await launcher.stop()
        await sup.close()
        assert await asyncio.wait_for(server.wait(), 10) == -9
        assert bystander.returncode is None
        assert not left.exists()
        assert not reused.exists()
    finally:
        for proc in (server, bystander):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
