"""A restarted agent adopts the model server its predecessor launched (same pid, models kept);
a record that is dead or launched differently gives a fresh server and leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from pathlib import Path

import aiohttp
import pytest

from modelplane.libs.process import (
    ProcessRecord,
    group_members,
    kill_group_if_same,
    read_record,
    start_time,
    sweep_records,
    write_record,
)
from modelplane.services.placement.model_server import ModelServerClient
from modelplane.services.placement.runtimes import build_runtime
from modelplane.services.placement.runtimes.mlserver import MLServerRuntime
from modelplane.services.placement.runtimes.server_process import record_path
from modelplane.services.placement.settings import PlacementSettings
from modelplane.services.placement.types import ReplicaProfile
from tests.helpers.iris import build_iris_model

START_TIMEOUT = 90.0

# Stands in for an agent: launches the replica's MLServer, loads the iris model, reports the pid,
# then waits to be killed outright (the crash the next agent recovers from).
CRASHING_AGENT = """
import asyncio, json, sys
from pathlib import Path
import aiohttp
from modelplane.services.placement.model_server import ModelServerClient
from modelplane.services.placement.runtimes import build_runtime
from modelplane.services.placement.settings import PlacementSettings
from modelplane.services.placement.types import ReplicaProfile

async def main() -> None:
    state_dir = Path(sys.argv[1])
    profile = ReplicaProfile(**json.loads(sys.argv[2]))
    runtime = build_runtime(PlacementSettings(state_dir=state_dir), profile, state_dir)
    async with aiohttp.ClientSession() as session:
        client = ModelServerClient(session, runtime.endpoints.local_http, 60)
        await runtime.start(client.ready, 90)
        await client.load("iris")
    print("LAUNCHED", json.dumps({"pid": runtime.pid, "http": runtime.endpoints.local_http}), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def profile(flavour: str = "a") -> ReplicaProfile:
    # A parallel worker: the server's group holds a worker process, so "whole group" matters.
    return ReplicaProfile(
        server_config="mlserver",
        runtime="mlserver",
        capabilities=("sklearn",),
        memory_bytes=1 << 30,
        overcommit_percent=0,
        parallel_workers=1,
        env={"MODELPLANE_TEST_FLAVOUR": flavour},
    )


class Pids:
    """Every server pid a test saw; whatever is still alive at the end is killed with its group."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}

    def add(self, pid: int) -> int:
        started = start_time(pid)
        if started is not None:
            self.seen[pid] = started
        return pid

    def kill_all(self) -> None:
        for pid, started in self.seen.items():
            kill_group_if_same(pid, started)


@pytest.fixture
def pids() -> Iterator[Pids]:
    seen = Pids()
    try:
        yield seen
    finally:
        seen.kill_all()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    """A replica state dir with iris in its model repository; any server still recorded is killed."""
    folder = tmp_path / "replica"
    iris = build_iris_model(tmp_path / "iris-artifact")
    shutil.copytree(iris.path, folder / "models" / "iris")
    try:
        yield folder
    finally:
        sweep_records([record_path(folder)])


def crashed_agent_server(state_dir: Path, flavour: str, pids: Pids) -> tuple[int, str]:
    """Run an agent stand-in that launches MLServer and loads iris, then SIGKILL it; the server stays."""
    agent = subprocess.Popen(
        [sys.executable, "-c", CRASHING_AGENT, str(state_dir), json.dumps(asdict(profile(flavour)))],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert agent.stdout is not None
        # Its log lines go to stdout too: the one we want is marked.
        for raw in agent.stdout:
            line = raw.decode(errors="replace")
            if line.startswith("LAUNCHED "):
                launched = json.loads(line.removeprefix("LAUNCHED "))
                break
        else:
            raise AssertionError("the agent stand-in exited before its server was ready")
        pids.add(int(launched["pid"]))
    finally:
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait()
        if agent.stdout is not None:
            agent.stdout.close()
    return int(launched["pid"]), str(launched["http"])


def new_runtime(state_dir: Path, flavour: str = "a") -> MLServerRuntime:
    runtime = build_runtime(PlacementSettings(state_dir=state_dir), profile(flavour), state_dir)
    assert isinstance(runtime, MLServerRuntime)
    return runtime


async def model_state(session: aiohttp.ClientSession, endpoint: str, name: str) -> str:
    client = ModelServerClient(session, endpoint, 30)
    return next((e.state for e in await client.index() if e.name == name), "")


async def group_gone(pgid: int, timeout: float = 20.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while group_members(pgid):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def test_restarted_agent_adopts_the_running_server(
    state_dir: Path, pids: Pids, session: aiohttp.ClientSession
) -> None:
    """A second runtime over the same state dir adopts the server: same pid, iris still READY;
    stopping it stops the server's whole process group and removes the record."""
    old_pid, endpoint = await asyncio.to_thread(crashed_agent_server, state_dir, "a", pids)
    assert len(group_members(old_pid)) >= 2, "MLServer with a parallel worker runs as a group"

    runtime = new_runtime(state_dir)
    assert runtime.endpoints.local_http == endpoint
    client = ModelServerClient(session, runtime.endpoints.local_http, 30)
    await runtime.start(client.ready, START_TIMEOUT)
    try:
        assert runtime.pid == old_pid
        assert await model_state(session, endpoint, "iris") == "READY"
    finally:
        await runtime.stop()
    assert await group_gone(old_pid)
    assert not record_path(state_dir).exists()


async def test_adopted_server_exit_is_noticed(
    state_dir: Path, pids: Pids, session: aiohttp.ClientSession
) -> None:
    """An adopted server (not our child) that dies is reported by wait_exit with its log tail."""
    old_pid, _ = await asyncio.to_thread(crashed_agent_server, state_dir, "a", pids)
    runtime = new_runtime(state_dir)
    client = ModelServerClient(session, runtime.endpoints.local_http, 30)
    await runtime.start(client.ready, START_TIMEOUT)
    try:
        assert runtime.pid == old_pid
        os.killpg(old_pid, signal.SIGKILL)
        ended = await asyncio.wait_for(runtime.wait_exit(), 30)
        assert ended is not None
        assert ended.log_tail
    finally:
        await runtime.stop()


async def test_record_of_a_dead_process_gives_a_fresh_server(
    state_dir: Path, pids: Pids, session: aiohttp.ClientSession
) -> None:
    """A record whose pid is dead (same fingerprint) is ignored: a new server starts and is recorded."""
    gone = await asyncio.create_subprocess_exec("sleep", "60")
    started = start_time(gone.pid)
    assert started is not None
    gone.kill()
    await gone.wait()
    runtime = new_runtime(state_dir)
    write_record(
        record_path(state_dir),
        ProcessRecord(pid=gone.pid, start_time=started, fingerprint=runtime.launch_spec().fingerprint()),
    )
    client = ModelServerClient(session, runtime.endpoints.local_http, 30)
    await runtime.start(client.ready, START_TIMEOUT)
    try:
        assert runtime.pid is not None
        runtime_pid = pids.add(runtime.pid)
        assert runtime_pid != gone.pid
        record = read_record(record_path(state_dir))
        assert record is not None
        assert record.pid == runtime_pid
        assert record.alive()
    finally:
        await runtime.stop()
    assert await group_gone(runtime_pid)


async def test_changed_launch_kills_the_old_server_and_starts_fresh(
    state_dir: Path, pids: Pids, session: aiohttp.ClientSession
) -> None:
    """A live server launched with a different fingerprint is killed (whole group), not adopted."""
    old_pid, _ = await asyncio.to_thread(crashed_agent_server, state_dir, "a", pids)
    runtime = new_runtime(state_dir, flavour="b")
    client = ModelServerClient(session, runtime.endpoints.local_http, 30)
    await runtime.start(client.ready, START_TIMEOUT)
    try:
        assert runtime.pid is not None
        pids.add(runtime.pid)
        assert runtime.pid != old_pid
        assert group_members(old_pid) == []
        # A fresh server has loaded nothing yet.
        assert await model_state(session, runtime.endpoints.local_http, "iris") != "READY"
    finally:
        await runtime.stop()
    assert all([await group_gone(pid) for pid in pids.seen])
