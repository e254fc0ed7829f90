"""MODELPLANE_STORAGE_MAX_ARTIFACT_BYTES bounds what one fetch writes, checked while it streams.

Real servers: the moto S3 emulator, a static file server and an aiohttp server that streams
an endless body without a Content-Length (so only the running count can stop it). Each
oversize fetch fails with a reason naming the limit, and leaves nothing in the cache.
"""

from __future__ import annotations

import io
import os
import tarfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from nats.aio.client import Client as NATS

from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.errors import ModelplaneError
from modelplane.services.placement.storage_client import StorageClient
from modelplane.services.storage.app import App
from modelplane.services.storage.cache import PARTIAL, Meter
from modelplane.services.storage.fetchers.base import ArtifactTooLarge, FetchTarget
from modelplane.services.storage.fetchers.gcs import GcsFetcher
from modelplane.services.storage.fetchers.objects import RemoteObject, ThreadedDownload
from modelplane.services.storage.settings import StorageSettings
from tests.helpers.gcs_emulator import GcsEmulator, running_gcs_emulator
from tests.helpers.http_server import FileServer
from tests.helpers.s3_emulator import S3Emulator, running_s3

MIB = 1024 * 1024
LIMIT = 2 * MIB
SECRET = "s3-emulator"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Emulator]:
    with running_s3() as emulator:
        yield emulator


@pytest.fixture
def files(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "www"
    root.mkdir()
    server = FileServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def endless() -> AsyncIterator[str]:
    """An HTTP server whose /model.bin streams chunks forever, with no Content-Length."""

    async def forever(request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            return web.Response(headers={"ETag": '"endless"'})
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = b"\0" * (256 * 1024)
        try:
            while True:  # the client hangs up once it is over its limit
                await resp.write(chunk)
        except ConnectionError:
            pass
        return resp

    app = web.Application()
    app.router.add_get("/model.bin", forever)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def storage(nats_server: EmbeddedNats, tmp_path: Path, s3: S3Emulator) -> AsyncIterator[App]:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / f"{SECRET}.env").write_text("".join(f"{k}={v}\n" for k, v in s3.credentials().items()))
    settings = StorageSettings(
        nats_url=nats_server.url,
        cache_dir=tmp_path / "cache",
        secrets_dir=secrets,
        pvc_root=tmp_path / "volumes",
        max_artifact_bytes=LIMIT,
    )
    app = App(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.close()


def assert_nothing_kept(app: App) -> None:
    assert app.cache.entries() == []
    assert list((app.cache.root / PARTIAL).iterdir()) == []


async def test_an_oversize_s3_artifact_fails_with_the_limit_as_reason(
    storage: App, nc: NATS, s3: S3Emulator
) -> None:
    """An S3 folder over the limit fails over NATS with a reason naming the setting; nothing is kept."""
    bucket = f"caps-{uuid.uuid4().hex[:12]}"
    s3.s3().create_bucket(Bucket=bucket)
    s3.s3().put_object(Bucket=bucket, Key="big/a.bin", Body=os.urandom(MIB + MIB // 2))
    s3.s3().put_object(Bucket=bucket, Key="big/b.bin", Body=os.urandom(MIB + MIB // 2))
    with pytest.raises(ModelplaneError) as caught:
        await StorageClient(nc, timeout=60).fetch(f"s3://{bucket}/big", "", SECRET, model="big")
    assert "MODELPLANE_STORAGE_MAX_ARTIFACT_BYTES" in str(caught.value)
    assert_nothing_kept(storage)


async def test_a_body_without_length_is_stopped_while_it_streams(storage: App, endless: str) -> None:
    """A server streaming forever is cut off just past the limit, and the partial file is removed."""
    assert storage.handler is not None
    with pytest.raises(ArtifactTooLarge):
        await storage.handler.fetch(f"{endless}/model.bin")
    assert_nothing_kept(storage)


async def test_an_archive_that_unpacks_past_the_limit_is_refused(storage: App, files: FileServer) -> None:
    """A small .tar.gz of zeros whose members add up past the limit is refused before it unpacks."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("a.bin", "b.bin"):
            info = tarfile.TarInfo(name)
            info.size = 2 * MIB
            tar.addfile(info, io.BytesIO(b"\0" * info.size))
    assert len(buffer.getvalue()) < LIMIT // 10
    (files.root / "bomb.tar.gz").write_bytes(buffer.getvalue())
    assert storage.handler is not None
    with pytest.raises(ArtifactTooLarge) as caught:
        await storage.handler.fetch(f"{files.url}/bomb.tar.gz")
    assert "bomb.tar.gz" in caught.value.message
    assert_nothing_kept(storage)


async def test_a_threaded_download_stops_at_the_next_chunk(tmp_path: Path) -> None:
    """An SDK thread writing without end is stopped by the cap within one chunk of the limit."""
    chunk = 64 * 1024
    meter = Meter(limit=LIMIT)
    target = RemoteObject(name="x", size=0, version="", relative="model.bin")

    def work(download: ThreadedDownload) -> None:
        with download.open(tmp_path, target) as out:
            while True:
                out.write(b"\0" * chunk)

    with pytest.raises(ArtifactTooLarge):
        await ThreadedDownload(meter).run(work)
    assert (tmp_path / "model.bin").stat().st_size <= LIMIT + chunk


@pytest.fixture(scope="module")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    with running_gcs_emulator(tmp_path_factory.mktemp("gcs")) as emulator:
        yield emulator


async def test_an_oversize_gcs_artifact_is_refused(gcs: GcsEmulator, tmp_path: Path) -> None:
    """A GCS folder over the limit fails with ArtifactTooLarge and writes at most the limit."""
    bucket = gcs.client().create_bucket(f"b-{uuid.uuid4().hex[:12]}")
    bucket.blob("big/a.bin").upload_from_string(os.urandom(MIB + MIB // 2))
    bucket.blob("big/b.bin").upload_from_string(os.urandom(MIB + MIB // 2))
    target = FetchTarget(
        uri=f"gs://{bucket.name}/big", scheme="gs", credentials={"STORAGE_EMULATOR_HOST": gcs.url}
    )
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ArtifactTooLarge):
        await GcsFetcher().download(target, dest, Meter(limit=LIMIT))
    assert sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) <= LIMIT
