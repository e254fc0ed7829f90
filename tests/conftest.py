"""Shared fixtures: a real nats-server per test on a free port, leaked-task detection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.store import connect, ensure_buckets


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[EmbeddedNats]:
    """A fresh nats-server with JetStream, storing under the test's temp dir."""
    server = EmbeddedNats(store_dir=tmp_path / "nats", port=free_port(), log_file=tmp_path / "nats.log")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NATS]:
    client = await connect(nats_server.url, name="test")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def js(nc: NATS) -> JetStreamContext:
    """JetStream context with every modelplane KV bucket created."""
    ctx = nc.jetstream()
    await ensure_buckets(ctx)
    return ctx


_LEAK_GRACE_SECONDS = 1.0


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves background tasks running after its fixtures closed."""
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0)
    leaked = [
        t
        for t in asyncio.all_tasks() - before
        if not t.done() and t is not asyncio.current_task() and not _is_library_task(t)
    ]
    if leaked:
        # A task cancelled during teardown may need a few more loop turns to unwind (nats-py's
        # message iterators cancel their own helper tasks only when they are next resumed); only
        # a task still running after a grace period is a leak.
        await asyncio.wait(leaked, timeout=_LEAK_GRACE_SECONDS)
        leaked = [t for t in leaked if not t.done()]
    if leaked:
        for t in leaked:
            t.cancel()
        pytest.fail(f"leaked tasks: {[(t.get_name(), repr(t.get_coro())) for t in leaked]}")


def _is_library_task(task: asyncio.Task[object]) -> bool:
    # nats-py and grpc.aio finish some internal tasks a tick after close(); they are not ours.
    coro = task.get_coro()
    qualname = getattr(coro, "__qualname__", "")
    return qualname.startswith(("Client.", "_")) or "grpc" in repr(coro)
