"""Two schedulers on one real NATS: only the lease holder acts; a standby takes over a dead leader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.store import TypedBucket
from modelplane.proto import lease_pb2
from modelplane.services.scheduler.app import LEASE_NAME, SchedulerApp
from modelplane.services.scheduler.settings import SchedulerSettings
from tests.scheduler.test_scheduler_app import (
    Agent,
    agents,
    available_on,
    eventually,
    placement,
    put_model,
    put_server,
)

# Short lease timings so a takeover happens within a few seconds.
TTL, RENEW = 2.0, 0.25


def settings(nats_server: EmbeddedNats, instance: str) -> SchedulerSettings:
    return SchedulerSettings.model_validate(
        {
            "nats_url": nats_server.url,
            "heartbeat_timeout": 600,
            "retry_interval": 0.5,
            "command_timeout": 2,
            "lease_ttl": TTL,
            "lease_renew_interval": RENEW,
            "instance_id": instance,
        }
    )


@asynccontextmanager
async def scheduler(nats_server: EmbeddedNats, instance: str) -> AsyncIterator[SchedulerApp]:
    app = SchedulerApp(settings(nats_server, instance))
    try:
        await app.start()
        yield app
    finally:
        await app.close()


async def kill(app: SchedulerApp) -> None:
    """Stop ``app`` as kill -9 would: its NATS connection goes first, so nothing is released."""
    assert app._nc is not None
    await app._nc.close()
    await app.close()


async def lease_holder(js: JetStreamContext) -> str | None:
    bucket = await TypedBucket.open(js, subjects.KV_LEASES, lease_pb2.Lease)
    found = await bucket.try_get(LEASE_NAME)
    return found.value.holder if found else None


def loads(replicas: list[Agent], model: str) -> list[tuple[str, int, int]]:
    """Every load command of ``model`` the agents received, as (server, index, version)."""
    return [(a.server, a.index, version) for a in replicas for name, version in a.loads if name == model]


async def test_standby_takes_over_without_loading_again(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """Only the leader sends loads; after it dies the standby leads, keeps the model, sends no load."""
    await put_server(js, "mlserver", 2)
    replicas = await agents(nc, js, "mlserver", 2)
    async with scheduler(nats_server, "first") as first:

        async def first_leads() -> bool:
            return first.is_leader

        await eventually(first_leads)
        async with scheduler(nats_server, "second") as second:
            await put_model(js, "iris")

            async def iris_available() -> bool:
                return len(available_on(await placement(js, "iris"), 1)) == 1

            await eventually(iris_available)
            assert not second.is_leader
            assert second.handler is None
            where = available_on(await placement(js, "iris"), 1)

            await kill(first)

            async def second_leads() -> bool:
                return second.is_leader and await lease_holder(js) == "second"

            await eventually(second_leads, timeout=TTL + 10)
            # A model applied after the takeover is placed by the new leader, which by then has
            # reconciled iris from KV.
            await put_model(js, "other")

            async def other_available() -> bool:
                return len(available_on(await placement(js, "other"), 1)) == 1

            await eventually(other_available)
            assert available_on(await placement(js, "iris"), 1) == where
            assert len(loads(replicas, "iris")) == 1
            assert len(loads(replicas, "other")) == 1
            assert all(a.unloads == [] for a in replicas)
    for agent in replicas:
        await agent.stop()


@contextmanager
def scheduler_process(
    nats_server: EmbeddedNats, instance: str, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`modelplane run scheduler` in its own process group; stopped by its pid at the end."""
    env = {
        **os.environ,
        "MODELPLANE_NATS_URL": nats_server.url,
        "MODELPLANE_SCHEDULER_LEASE_TTL": str(TTL),
        "MODELPLANE_SCHEDULER_LEASE_RENEW_INTERVAL": str(RENEW),
        "MODELPLANE_SCHEDULER_INSTANCE_ID": instance,
        "MODELPLANE_SCHEDULER_RETRY_INTERVAL": "0.5",
        "MODELPLANE_SCHEDULER_HEARTBEAT_TIMEOUT": "600",
    }
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelplane", "run", "scheduler"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


async def test_kill_9_of_leader_process_hands_over_to_standby(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS, tmp_path: Path
) -> None:
    """Two scheduler processes: kill -9 the leader; the other takes the lease and places a new model."""
    await put_server(js, "mlserver", 1)
    replicas = await agents(nc, js, "mlserver", 1)
    with (
        scheduler_process(nats_server, "one", tmp_path / "one.log") as one,
        scheduler_process(nats_server, "two", tmp_path / "two.log") as two,
    ):
        procs = {"one": one, "two": two}

        async def leader_elected() -> bool:
            return await lease_holder(js) in procs

        await eventually(leader_elected, timeout=30)
        await put_model(js, "iris")

        async def iris_available() -> bool:
            return bool(available_on(await placement(js, "iris"), 1))

        await eventually(iris_available, timeout=30)
        leader = await lease_holder(js)
        assert leader is not None
        standby = "two" if leader == "one" else "one"

        os.kill(procs[leader].pid, signal.SIGKILL)
        procs[leader].wait(timeout=10)

        async def standby_leads() -> bool:
            return await lease_holder(js) == standby

        await eventually(standby_leads, timeout=TTL + 10)
        await put_model(js, "other")

        async def other_available() -> bool:
            return bool(available_on(await placement(js, "other"), 1))

        await eventually(other_available, timeout=30)
        assert procs[standby].poll() is None
        assert loads(replicas, "iris") == [("mlserver", 0, 1)]
        assert loads(replicas, "other") == [("mlserver", 0, 1)]
        log_text = (tmp_path / f"{standby}.log").read_text()
        assert "scheduler_leading" in log_text
    for agent in replicas:
        await agent.stop()
