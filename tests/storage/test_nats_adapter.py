"""The storage NATS adapter and app over a real nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.proto import agent_pb2
from modelplane.services.storage.app import App
from modelplane.services.storage.settings import StorageSettings


@pytest.fixture
async def storage(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[App]:
    app = App(StorageSettings(nats_url=nats_server.url, cache_dir=tmp_path / "cache"))
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
    invalid = await _fetch(nc, "s3://bucket/iris")
    assert invalid.error_kind == "invalid"
    assert "unsupported scheme 's3'" in invalid.error
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


async def test_close_is_idempotent(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    """close() may be called twice, and before start()."""
    app = App(StorageSettings(nats_url=nats_server.url, cache_dir=tmp_path / "cache"))
    await app.close()
    app = App(StorageSettings(nats_url=nats_server.url, cache_dir=tmp_path / "cache"))
    await app.start()
    await app.close()
    await app.close()
