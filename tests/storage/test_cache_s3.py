"""The storage service with its real fetchers against a moto S3 server: the cache's guarantees.

- two models naming one artifact download it once (counted at the emulator), whether they ask
  at the same time or one after the other;
- a storage process killed (SIGKILL) in the middle of a download leaves nothing usable, and
  the next process fetches the complete, byte-identical artifact;
- artifacts larger together than the limit keep the cache under it, least recently used first,
  never evicting an entry that is leased.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.proto import agent_pb2
from modelplane.services.placement.storage_client import StorageClient
from modelplane.services.storage.app import App
from modelplane.services.storage.cache import PARTIAL
from modelplane.services.storage.fetchers.base import FetchTarget
from modelplane.services.storage.fetchers.s3 import S3Fetcher
from modelplane.services.storage.settings import StorageSettings
from tests.helpers.processes import stop_process_group
from tests.helpers.progress import RecordingProgress
from tests.helpers.s3_emulator import S3Emulator, running_s3

MIB = 1024 * 1024
SECRET = "s3-emulator"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Emulator]:
    with running_s3() as emulator:
        yield emulator


@pytest.fixture
def bucket(s3: S3Emulator) -> str:
    name = f"cache-{uuid.uuid4().hex[:12]}"
    s3.s3().create_bucket(Bucket=name)
    return name


@pytest.fixture
def secrets_dir(tmp_path: Path, s3: S3Emulator) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    lines = [f"{k}={v}" for k, v in s3.credentials().items()]
    (folder / f"{SECRET}.env").write_text("\n".join(lines) + "\n")
    return folder


MakeStorage = Callable[..., Awaitable[App]]


@pytest.fixture
async def make_storage(
    nats_server: EmbeddedNats, tmp_path: Path, secrets_dir: Path
) -> AsyncIterator[MakeStorage]:
    """Starts the storage App (default registry: the real S3 fetcher) with a given cache limit."""
    async with AsyncExitStack() as stack:

        async def start(max_bytes: int, lease_timeout: float = 300.0) -> App:
            settings = StorageSettings(
                nats_url=nats_server.url,
                cache_dir=tmp_path / "cache",
                secrets_dir=secrets_dir,
                pvc_root=tmp_path / "volumes",
                cache_max_bytes=max_bytes,
                lease_timeout=lease_timeout,
            )
            app = App(settings)
            await app.start()
            stack.push_async_callback(app.close)
            return app

        yield start


def _put(s3: S3Emulator, bucket: str, key: str, data: bytes) -> None:
    s3.s3().put_object(Bucket=bucket, Key=key, Body=data)


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


async def _progress_of(sub: Subscription, model: str, min_bytes: int = 0) -> agent_pb2.FetchProgress:
    """The first progress event of ``model`` that reports at least ``min_bytes`` downloaded."""
    while True:
        msg = await sub.next_msg(timeout=30)
        event = agent_pb2.FetchProgress()
        event.ParseFromString(msg.data)
        if event.model == model and event.bytes_done >= min_bytes:
            return event


async def _eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.01)


# ---- one download per artifact --------------------------------------------------------------


async def test_two_models_with_one_artifact_download_it_once(
    make_storage: MakeStorage, nc: NATS, s3: S3Emulator, bucket: str
) -> None:
    """Concurrent and later fetches of one s3 URI by different models make one GET per object."""
    await make_storage(1024 * MIB)
    weights = os.urandom(4 * MIB)
    _put(s3, bucket, "iris/model.joblib", weights)
    _put(s3, bucket, "iris/model-settings.json", b'{"name": "iris"}')
    uri = f"s3://{bucket}/iris"
    client = StorageClient(nc, timeout=60)
    sub = await nc.subscribe(subjects.ALL_STORAGE_PROGRESS)
    try:
        # Hold the download open so the second model provably asks while the first downloads.
        with s3.stall(bucket, "iris/model.joblib", after_bytes=MIB):
            first = asyncio.ensure_future(client.fetch(uri, "", SECRET, model="iris-a"))
            await _progress_of(sub, "iris-a", min_bytes=1)
            second = asyncio.ensure_future(client.fetch(uri, "", SECRET, model="iris-b"))
            joined = await _progress_of(sub, "iris-b")
            assert joined.phase == "downloading"
        path_a, path_b = await asyncio.gather(first, second)
        path_c = await client.fetch(uri, "", SECRET, model="iris-c")
        hit = await _progress_of(sub, "iris-c")
    finally:
        await sub.unsubscribe()
    assert path_a == path_b == path_c
    assert hit.phase == "cached"
    assert (path_a / "model.joblib").read_bytes() == weights
    assert s3.download_count(bucket, "iris/model.joblib") == 1
    assert s3.download_count(bucket, "iris/model-settings.json") == 1


# ---- the cache limit -------------------------------------------------------------------------


async def test_cache_stays_under_its_limit_lru_first_and_leased_entries_stay(
    make_storage: MakeStorage, s3: S3Emulator, bucket: str, tmp_path: Path
) -> None:
    """Beyond the limit the least recently used entries go, but a leased one survives until released."""
    limit = 3 * MIB + MIB // 2  # room for three 1 MiB artifacts, not four
    app = await make_storage(limit)
    handler = app.handler
    assert handler is not None
    for name in "abcdef":
        _put(s3, bucket, f"{name}/model.bin", name.encode() * MIB)

    async def fetch(name: str) -> Path:
        return await handler.fetch(f"s3://{bucket}/{name}", secret_name=SECRET)

    def cached() -> set[str]:
        return {(app.cache.root / key / "model.bin").read_bytes()[:1].decode() for key in app.cache.entries()}

    a, b = await fetch("a"), await fetch("b")
    await fetch("c")
    async with handler.lease(f"s3://{bucket}/b", secret_name=SECRET) as leased:
        assert leased == b
        await fetch("a")  # recency now: c, b (leased), a
        await fetch("d")  # over the limit: c goes
        assert cached() == {"a", "b", "d"}
        await fetch("e")  # b is the oldest but leased: a goes
        assert cached() == {"b", "d", "e"}
        assert b.exists()
    await fetch("f")  # the lease ended: b, the oldest, goes now
    assert cached() == {"d", "e", "f"}
    assert not a.exists()
    assert _tree_bytes(app.cache.root) <= limit
    assert list((app.cache.root / PARTIAL).iterdir()) == []
    assert s3.download_count(bucket, "a/model.bin") == 1  # the second fetch of a was a hit


# ---- a replied path stays until the caller copied it ----------------------------------------


def _key_of(app: App, path: Path) -> str:
    assert path.parent == app.cache.root
    return path.name


async def test_replied_path_is_not_evicted_until_released(
    make_storage: MakeStorage, nc: NATS, s3: S3Emulator, bucket: str
) -> None:
    """A path in a fetch reply survives eviction after the reply, until its caller releases it."""
    app = await make_storage(MIB + MIB // 2)  # one 1 MiB artifact fits, two do not
    for name in "abc":
        _put(s3, bucket, f"{name}/model.bin", name.encode() * MIB)
    client = StorageClient(nc, timeout=60)
    async with client.lease(f"s3://{bucket}/a", "", SECRET) as a:
        # The agent's copy would run here; a newer artifact pushes the cache over its limit.
        b = await client.fetch(f"s3://{bucket}/b", "", SECRET)
        assert a.exists()
        assert (a / "model.bin").read_bytes() == b"a" * MIB
    await _eventually(lambda: app.cache.in_use() == [_key_of(app, b)], "a is released")
    await client.fetch(f"s3://{bucket}/c", "", SECRET)
    assert not a.exists()  # released: evicted
    assert b.exists()  # replied with fetch(), never released: protected until the timeout


async def test_unreleased_path_is_protected_only_until_the_lease_timeout(
    make_storage: MakeStorage, nc: NATS, s3: S3Emulator, bucket: str
) -> None:
    """A caller that never releases (it died) holds the entry no longer than lease_timeout."""
    app = await make_storage(MIB + MIB // 2, lease_timeout=0.2)
    for name in "ab":
        _put(s3, bucket, f"{name}/model.bin", name.encode() * MIB)
    client = StorageClient(nc, timeout=60)
    a = await client.fetch(f"s3://{bucket}/a", "", SECRET)
    await _eventually(lambda: app.cache.in_use() == [], "the lease of a expires")
    await client.fetch(f"s3://{bucket}/b", "", SECRET)
    assert not a.exists()


# ---- a killed download -----------------------------------------------------------------------


class StorageProcess:
    """``modelplane run storage`` in its own session, on the test's NATS and cache directory."""

    def __init__(self, nats_server: EmbeddedNats, tmp_path: Path, secrets_dir: Path) -> None:
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
        self._env.update(
            {
                "MODELPLANE_NATS_URL": nats_server.url,
                "MODELPLANE_STORAGE_CACHE_DIR": str(tmp_path / "cache"),
                "MODELPLANE_STORAGE_SECRETS_DIR": str(secrets_dir),
                "MODELPLANE_STORAGE_PVC_ROOT": str(tmp_path / "volumes"),
            }
        )
        self._log = tmp_path / "storage.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "modelplane"), "run", "storage"],
                env=self._env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    async def wait_serving(self, nc: NATS, timeout: float = 60.0) -> None:
        """Until the process answers fetch requests (a request for a missing path)."""
        request = agent_pb2.FetchRequest(uri="/nonexistent/modelplane-readiness").SerializeToString()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            assert self.proc.poll() is None, self.log_tail()
            try:
                await nc.request(subjects.STORAGE_FETCH, request, timeout=1)
                return
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                await asyncio.sleep(0.1)
        raise AssertionError(f"storage did not serve within {timeout}s\n{self.log_tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)

    def log_tail(self) -> str:
        try:
            return self._log.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"


async def test_killed_download_leaves_nothing_usable_and_the_next_process_completes_it(
    nats_server: EmbeddedNats, nc: NATS, s3: S3Emulator, bucket: str, tmp_path: Path, secrets_dir: Path
) -> None:
    """SIGKILL mid-download: no complete entry, only a partial; a new process fetches it whole."""
    data = os.urandom(48 * MIB)
    _put(s3, bucket, "big/weights.bin", data)
    uri = f"s3://{bucket}/big/weights.bin"
    cache = tmp_path / "cache"
    storage = StorageProcess(nats_server, tmp_path, secrets_dir)
    try:
        storage.start()
        await storage.wait_serving(nc)
        sub = await nc.subscribe(subjects.storage_progress("big"))
        inbox = await nc.subscribe(nc.new_inbox())
        try:
            with s3.stall(bucket, "big/weights.bin", after_bytes=2 * MIB):
                request = agent_pb2.FetchRequest(uri=uri, secret_name=SECRET, model="big")
                await nc.publish(subjects.STORAGE_FETCH, request.SerializeToString(), reply=inbox.subject)
                moving = await _progress_of(sub, "big", min_bytes=1)
                assert 0 < moving.bytes_done < moving.bytes_total == len(data)
                storage.kill()
        finally:
            await sub.unsubscribe()
            await inbox.unsubscribe()
        complete = [p for p in cache.iterdir() if p.name != PARTIAL]
        assert complete == []
        partials = list((cache / PARTIAL).iterdir())
        assert len(partials) <= 1
        assert all(_tree_bytes(p) < len(data) for p in partials)

        storage.start()
        await storage.wait_serving(nc)
        path = await StorageClient(nc, timeout=120).fetch(uri, "", SECRET, model="big")
        assert hashlib.sha256((path / "weights.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
        assert path.parent == cache
        assert list((cache / PARTIAL).iterdir()) == []
    finally:
        storage.stop()


# ---- cancelling an S3 download ---------------------------------------------------------------


async def test_cancelled_s3_download_stops_transferring(s3: S3Emulator, bucket: str, tmp_path: Path) -> None:
    """Once a cancelled S3 download has returned, its transfer threads are done: no more bytes land."""
    _put(s3, bucket, "big/weights.bin", os.urandom(24 * MIB))
    _put(s3, bucket, "small/weights.bin", b"s" * MIB)
    credentials = s3.credentials()

    def target(key: str) -> FetchTarget:
        return FetchTarget(uri=f"s3://{bucket}/{key}", scheme="s3", credentials=credentials)

    progress = RecordingProgress()
    dest = tmp_path / "big"
    dest.mkdir()
    with s3.stall(bucket, "big/weights.bin", after_bytes=MIB):
        download = asyncio.ensure_future(S3Fetcher().download(target("big/weights.bin"), dest, progress))
        await _eventually(lambda: progress.done > 0, "bytes are moving")
        download.cancel()
        # The stall is lifted when the block ends; the cancelled download must not care.
    with pytest.raises(asyncio.CancelledError):
        await download
    done_at_cancel = progress.done
    # Work that takes the event loop and the network for a while: any straggler would land now.
    other = tmp_path / "small"
    other.mkdir()
    await S3Fetcher().download(target("small/weights.bin"), other, RecordingProgress())
    assert progress.done == done_at_cancel < 24 * MIB
    assert _tree_bytes(dest) < 24 * MIB
    assert not (dest / "weights.bin").exists()
