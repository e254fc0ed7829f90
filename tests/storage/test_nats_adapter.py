"""The storage NATS adapter and app over a real nats-server: fetch round trips and progress events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.errors import NotFoundError
from modelplane.libs.local_paths import LocalRoots
from modelplane.proto import agent_pb2
from modelplane.services.placement.storage_client import StorageClient
from modelplane.services.storage.app import App
from modelplane.services.storage.fetchers.local import LocalFetcher
from modelplane.services.storage.fetchers.registry import FetcherRegistry
from modelplane.services.storage.settings import StorageSettings

from .memory_fetcher import SCHEME, MemoryFetcher


@pytest.fixture
def fetcher() -> MemoryFetcher:
    return MemoryFetcher(artifacts={"iris": {"model.joblib": b"i" * 10_000}})


@pytest.fixture
async def storage(nats_server: EmbeddedNats, tmp_path: Path, fetcher: MemoryFetcher) -> AsyncIterator[App]:
    settings = StorageSettings(
        nats_url=nats_server.url, cache_dir=tmp_path / "cache", secrets_dir=tmp_path / "secrets"
    )
    app = App(settings, registry=FetcherRegistry([LocalFetcher(LocalRoots.of([tmp_path])), fetcher]))
    await app.start()
    try:
        yield app
    finally:
        await app.close()


async def _fetch(nc: NATS, uri: str) -> agent_pb2.FetchReply:
    msg = await nc.request(
        subjects.STORAGE_FETCH, agent_pb2.FetchRequest(uri=uri).SerializeToString(), timeout=5
    )
    reply = agent_pb2.FetchReply()
    reply.ParseFromString(msg.data)
    return reply


async def test_fetch_replies_with_the_local_path(storage: App, nc: NATS, tmp_path: Path) -> None:
    """A FetchRequest for an existing path gets a FetchReply carrying that path."""
    (tmp_path / "iris").mkdir()
    reply = await _fetch(nc, f"file://{tmp_path / 'iris'}")
    assert reply.error == ""
    assert reply.path == str(tmp_path / "iris")


async def test_fetch_errors_carry_a_kind(storage: App, nc: NATS, tmp_path: Path) -> None:
    """Failures come back as error + error_kind (invalid, not_found), never as a timeout."""
    invalid = await _fetch(nc, "ftp://host/iris")
    assert invalid.error_kind == "invalid"
    assert "unsupported scheme 'ftp'" in invalid.error
    assert invalid.path == ""
    missing = await _fetch(nc, str(tmp_path / "nope"))
    assert missing.error_kind == "not_found"
    assert str(tmp_path / "nope") in missing.error


async def test_garbage_request_is_invalid(storage: App, nc: NATS) -> None:
    """A payload that is not a FetchRequest is answered with error_kind invalid."""
    msg = await nc.request(subjects.STORAGE_FETCH, b"\xff\xff\xff", timeout=5)
    reply = agent_pb2.FetchReply()
    reply.ParseFromString(msg.data)
    assert reply.error_kind == "invalid"


async def test_storage_client_round_trip(storage: App, nc: NATS, fetcher: MemoryFetcher) -> None:
    """The agent's StorageClient gets the cached path of a remote artifact, and errors as types."""
    client = StorageClient(nc, timeout=5)
    path = await client.fetch(f"{SCHEME}://iris", "", "", model="iris", version=1)
    assert (path / "model.joblib").read_bytes() == b"i" * 10_000
    assert path.parent == storage.settings.cache_dir
    with pytest.raises(NotFoundError, match="secret nope not found"):
        await client.fetch(f"{SCHEME}://iris", "", "nope")


async def test_progress_is_published_per_model(storage: App, nc: NATS, fetcher: MemoryFetcher) -> None:
    """While an artifact downloads, FetchProgress arrives on the model's subject, ending with done."""
    received: asyncio.Queue[agent_pb2.FetchProgress] = asyncio.Queue()

    async def on_progress(msg: Msg) -> None:
        event = agent_pb2.FetchProgress()
        event.ParseFromString(msg.data)
        await received.put(event)

    sub = await nc.subscribe(subjects.storage_progress("iris"), cb=on_progress)
    await nc.flush()
    fetcher.gate = asyncio.Event()
    client = StorageClient(nc, timeout=10)
    pending = asyncio.ensure_future(client.fetch(f"{SCHEME}://iris", "v1", "", model="iris", version=7))
    first = await asyncio.wait_for(received.get(), timeout=5)
    assert (first.model, first.version, first.uri, first.phase) == (
        "iris",
        7,
        f"{SCHEME}://iris",
        "downloading",
    )
    fetcher.gate.set()
    await pending
    events = [first]
    while events[-1].phase != "done":
        events.append(await asyncio.wait_for(received.get(), timeout=5))
    assert (events[-1].bytes_done, events[-1].bytes_total) == (10_000, 10_000)
    await client.fetch(f"{SCHEME}://iris", "v1", "", model="iris", version=7)
    assert (await asyncio.wait_for(received.get(), timeout=5)).phase == "cached"
    await sub.unsubscribe()


async def test_concurrent_requests_share_one_download(storage: App, nc: NATS, fetcher: MemoryFetcher) -> None:
    """Two agents asking for one artifact at once are both answered from a single download."""
    fetcher.gate = asyncio.Event()
    client = StorageClient(nc, timeout=10)
    first = asyncio.ensure_future(client.fetch(f"{SCHEME}://iris", "", ""))
    await fetcher.started.wait()
    second = asyncio.ensure_future(client.fetch(f"{SCHEME}://iris", "", ""))
    await fetcher.wait_for_fetches(2)
    fetcher.gate.set()
    assert await first == await second
    assert fetcher.downloads == 1


async def test_close_is_idempotent(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    """close() may be called twice, and before start()."""
    settings = StorageSettings(nats_url=nats_server.url, cache_dir=tmp_path / "cache")
    app = App(settings)
    await app.close()
    app = App(settings)
    await app.start()
    await app.close()
    await app.close()
