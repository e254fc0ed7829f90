"""One S3 artifact, three ways to get it onto local disk, timed in the same run.

A moto S3 server runs as its own process (``moto_server``, free port, stopped by pid), so the
server's work does not share this process's interpreter with the downloads being measured.
The artifact is ``size_mib`` MiB of random bytes generated at the start of the run.

Each round measures, in this order:
- ``baseline``: boto3 ``download_file`` into a temp file with boto3's default transfer settings,
  which is what ``aws s3 cp s3://... file`` does (same s3transfer engine, 8 MiB parts, 10
  threads);
- ``ours (cold)``: ``StorageHandler.fetch`` of the ``s3://`` URI into an empty cache: secret
  lookup, the listing that makes the cache key, the S3 fetcher's download, verification and
  the rename into the cache (everything but the NATS request/reply, which is ~1 ms). The
  fetchers are built once and warmed by one untimed fetch, as in a running service; the
  baseline's client is likewise built before its clock starts;
- ``ours (hit)``: the same fetch again, now answered from the cache;
- ``agent copy``: copying the cached file into a model repository folder, as the placement
  agent does before it asks MLServer to load the model.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from modelplane.libs.embedded_nats import free_port
from modelplane.libs.local_paths import LocalRoots
from modelplane.services.storage.cache import StorageCache
from modelplane.services.storage.fetchers import FetcherRegistry, default_registry
from modelplane.services.storage.handler import StorageHandler
from modelplane.services.storage.secrets import SecretStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIB = 1 << 20
BUCKET = "bench"
KEY = "model/weights.bin"
SECRET = "bench-s3"
KEY_ID, SECRET_KEY, REGION = "bench-key-id", "bench-secret", "us-east-1"
# Seconds to wait for moto_server to answer.
START_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Round:
    baseline_s: float
    cold_s: float
    hit_s: float
    copy_s: float


class MotoServer:
    """``moto_server`` on 127.0.0.1:<free port> in its own process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = Path(sys.executable).parent / "moto_server"
        self._proc = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                    return
            except (urllib.error.URLError, ConnectionError):
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None


def _client(endpoint: str) -> S3Client:
    session = boto3.session.Session(
        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )
    client: S3Client = session.client("s3", endpoint_url=endpoint)
    return client


def upload_artifact(endpoint: str, size_mib: int, scratch: Path) -> None:
    """Create the bucket and a ``size_mib`` MiB object of random bytes."""
    source = scratch / "artifact.bin"
    with source.open("wb") as out:
        for _ in range(size_mib):
            out.write(os.urandom(MIB))
    client = _client(endpoint)
    client.create_bucket(Bucket=BUCKET)
    client.upload_file(str(source), BUCKET, KEY)
    source.unlink()


def _write_secret(secrets_dir: Path, endpoint: str) -> None:
    secrets_dir.mkdir(parents=True, exist_ok=True)
    (secrets_dir / f"{SECRET}.env").write_text(
        f"AWS_ACCESS_KEY_ID={KEY_ID}\nAWS_SECRET_ACCESS_KEY={SECRET_KEY}\n"
        f"AWS_ENDPOINT_URL={endpoint}\nAWS_DEFAULT_REGION={REGION}\n"
    )


def _baseline(endpoint: str, dest: Path) -> float:
    client = _client(endpoint)
    started = time.perf_counter()
    client.download_file(BUCKET, KEY, str(dest))
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


async def _ours(
    registry: FetcherRegistry, scratch: Path, secrets_dir: Path, size_bytes: int
) -> tuple[float, float, float]:
    cache = StorageCache(scratch / "cache", max_bytes=4 * size_bytes)
    await cache.start()
    try:
        handler = StorageHandler(registry, cache, SecretStore(secrets_dir))
        uri = f"s3://{BUCKET}/{KEY}"
        started = time.perf_counter()
        cold = await handler.fetch(uri, secret_name=SECRET)
        cold_s = time.perf_counter() - started
        started = time.perf_counter()
        hit = await handler.fetch(uri, secret_name=SECRET)
        hit_s = time.perf_counter() - started
        if hit != cold or (cold / "weights.bin").stat().st_size != size_bytes:
            raise RuntimeError(f"unexpected cache entry {cold} / {hit}")
        folder = scratch / "repo" / "bench_1"
        started = time.perf_counter()
        folder.mkdir(parents=True)
        await asyncio.to_thread(shutil.copy2, cold / "weights.bin", folder / "weights.bin")
        copy_s = time.perf_counter() - started
    finally:
        await cache.close()
    return cold_s, hit_s, copy_s


def new_registry(work_dir: Path | None) -> FetcherRegistry:
    """The storage service's fetchers, shared by every round as in a long-running service."""
    base = Path(tempfile.gettempdir() if work_dir is None else work_dir)
    return default_registry(base / "bench-volumes", LocalRoots.of([base]))


def warm_up(registry: FetcherRegistry, secrets_dir: Path, size_mib: int, work_dir: Path | None) -> None:
    """One untimed fetch: a running service has built its S3 session (~0.15 s) long ago."""
    with tempfile.TemporaryDirectory(prefix="bench-storage-", dir=work_dir) as tmp:
        asyncio.run(_ours(registry, Path(tmp), secrets_dir, size_mib * MIB))


def run_round(
    registry: FetcherRegistry, endpoint: str, secrets_dir: Path, size_mib: int, work_dir: Path | None
) -> Round:
    """One measurement of each way, in fresh temporary directories (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="bench-storage-", dir=work_dir) as tmp:
        scratch = Path(tmp)
        baseline_s = _baseline(endpoint, scratch / "baseline.bin")
        (scratch / "baseline.bin").unlink()
        cold_s, hit_s, copy_s = asyncio.run(_ours(registry, scratch, secrets_dir, size_mib * MIB))
    return Round(baseline_s=baseline_s, cold_s=cold_s, hit_s=hit_s, copy_s=copy_s)


def prepare(server: MotoServer, size_mib: int, secrets_dir: Path, work_dir: Path | None) -> None:
    """Start the emulator, upload the artifact and write the secret that points at it."""
    server.start()
    with tempfile.TemporaryDirectory(prefix="bench-storage-upload-", dir=work_dir) as tmp:
        upload_artifact(server.endpoint, size_mib, Path(tmp))
    _write_secret(secrets_dir, server.endpoint)
