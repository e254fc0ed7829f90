"""The local replica launcher keeps one agent process per desired Server replica."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.process import ProcessRecord, start_time, write_record
from modelplane.libs.resources import convert
from modelplane.libs.resources.replica_cap import MAX_SERVER_REPLICAS_ENV
from modelplane.libs.resources.types import Meta, Server, ServerSpec
from modelplane.libs.store import TypedBucket
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import resources_pb2, state_pb2
from modelplane.up.children import Child
from modelplane.up.launcher import RUNTIME_RECORD, ReplicaLauncher, available_memory_bytes


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


def _child_pids() -> set[int]:
    """Processes this test process started (every thread's children, from /proc)."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            pids |= {int(p) for p in (task / "children").read_text().split()}
    return pids


async def test_300_replicas_start_no_more_than_the_cap_and_say_why(
    js: JetStreamContext, tmp_path: Path
) -> None:
    """A Server without maxReplicas asking for 300 replicas gets the cap's worth of processes, and
    the first replica not started is registered as unavailable with the reason; scaling within the
    cap withdraws it."""
    servers = await TypedBucket.open(js, subjects.KV_SERVERS, resources_pb2.Server)
    replicas = await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
    sup = TaskSupervisor("test")
    before = _child_pids()
    launcher = ReplicaLauncher(js, tmp_path, {}, sup, make_child=sleeper_child, max_server_replicas=3)
    await launcher.start()
    try:
        spec = ServerSpec("mlserver", replicas=300)
        await servers.put("big", convert.server_to_pb(Server(meta=Meta(name="big"), spec=spec)))

        async def refused() -> bool:
            return await replicas.try_get(subjects.replica_key("big", 3)) is not None

        await _until_async(refused)
        record = await replicas.get(subjects.replica_key("big", 3))
        assert "297 of 300 replicas not started" in record.value.unavailable_reason
        assert MAX_SERVER_REPLICAS_ENV in record.value.unavailable_reason
        # The record is written once the pass has started what it will: still three.
        assert len(launcher.running()) == 3
        assert len(_child_pids() - before) == 3
        await servers.put(
            "big", convert.server_to_pb(Server(meta=Meta(name="big"), spec=ServerSpec("mlserver")))
        )
        await _until(lambda: launcher.running() == [("big", 0)])
        assert await replicas.try_get(subjects.replica_key("big", 3)) is None
    finally:
        await launcher.stop()
        await sup.close()


async def test_a_replica_that_does_not_fit_in_memory_is_not_started(
    js: JetStreamContext, tmp_path: Path
) -> None:
    """A replica declaring more memory than the machine has available starts no process; its status
    record says how much it declares and how much is available."""
    available = available_memory_bytes()
    assert available is not None  # Linux: /proc/meminfo
    servers = await TypedBucket.open(js, subjects.KV_SERVERS, resources_pb2.Server)
    replicas = await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
    sup = TaskSupervisor("test")
    before = _child_pids()
    launcher = ReplicaLauncher(js, tmp_path, {}, sup, make_child=sleeper_child)
    await launcher.start()
    try:
        spec = ServerSpec("mlserver", replicas=2, memory_bytes=available * 4)
        await servers.put("huge", convert.server_to_pb(Server(meta=Meta(name="huge"), spec=spec)))

        async def refused() -> bool:
            return await replicas.try_get(subjects.replica_key("huge", 0)) is not None

        await _until_async(refused)
        record = await replicas.get(subjects.replica_key("huge", 0))
        assert "replica 0 not started" in record.value.unavailable_reason
        assert "GiB of memory" in record.value.unavailable_reason
        assert launcher.running() == []
        assert _child_pids() == before
    finally:
        await launcher.stop()
        await sup.close()


async def _until_async(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)
