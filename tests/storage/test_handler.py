"""StorageHandler: local paths, routing, remote fetches through the cache, secrets, progress."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.libs.local_paths import LocalRoots
from modelplane.services.storage.cache import StorageCache
from modelplane.services.storage.fetchers.base import FetchTarget, Progress
from modelplane.services.storage.fetchers.local import LocalFetcher
from modelplane.services.storage.fetchers.registry import (
    AZURE_BLOB_SCHEME,
    FetcherRegistry,
    default_registry,
    scheme_of,
)
from modelplane.services.storage.handler import FetchProgress, ProgressKey, StorageHandler, display_uri
from modelplane.services.storage.secrets import SecretStore

from .memory_fetcher import SCHEME, MemoryFetcher

SECRET_VALUE = "s3cr3t-Value-that-must-not-leak"


@dataclass
class ListSink:
    """A ProgressSink keeping what it is given."""

    events: list[FetchProgress] = field(default_factory=list)
    _published: asyncio.Event = field(default_factory=asyncio.Event)

    async def publish(self, event: FetchProgress) -> None:
        self.events.append(event)
        self._published.set()

    async def wait_for_bytes(self) -> None:
        """Return once an event reports some bytes done."""
        while not any(e.bytes_done > 0 for e in self.events):
            self._published.clear()
            await self._published.wait()


class LeakyFetcher(MemoryFetcher):
    """A badly written fetcher whose error quotes the credential it was given."""

    async def download(self, target: FetchTarget, dest: Path, progress: Progress) -> None:
        raise InvalidError(f"access denied for key {target.credentials.get('AWS_SECRET_ACCESS_KEY')}")


@pytest.fixture
def fetcher() -> MemoryFetcher:
    return MemoryFetcher(artifacts={"iris": {"model.joblib": b"x" * 5000}})


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "s3.env").write_text(f"AWS_ACCESS_KEY_ID=AKIA\nAWS_SECRET_ACCESS_KEY={SECRET_VALUE}\n")
    (folder / "fallback.env").write_text("HF_TOKEN=hf_default\n")
    return folder


@pytest.fixture
async def cache(tmp_path: Path) -> AsyncIterator[StorageCache]:
    cache = StorageCache(tmp_path / "cache", 1024 * 1024)
    await cache.start()
    try:
        yield cache
    finally:
        await cache.close()


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
def handler(
    fetcher: MemoryFetcher, cache: StorageCache, secrets_dir: Path, sink: ListSink, tmp_path: Path
) -> StorageHandler:
    # Local paths may name anything under tmp_path except the service's own folders.
    roots = LocalRoots.of([tmp_path], protected=[secrets_dir, tmp_path / "cache"])
    registry = FetcherRegistry([LocalFetcher(roots), fetcher])
    return StorageHandler(registry, cache, SecretStore(secrets_dir), progress=sink, progress_interval=0.01)


# ---- local paths ------------------------------------------------------------------------------


async def test_absolute_path_is_returned(handler: StorageHandler, tmp_path: Path) -> None:
    """A plain absolute path that exists comes back as itself."""
    (tmp_path / "m").mkdir()
    assert await handler.fetch(str(tmp_path / "m")) == tmp_path / "m"


async def test_file_uri_absolute(handler: StorageHandler, tmp_path: Path) -> None:
    """file:///abs/path resolves to /abs/path."""
    (tmp_path / "m").mkdir()
    assert await handler.fetch(f"file://{tmp_path / 'm'}") == tmp_path / "m"


async def test_relative_paths_resolve_against_cwd(
    handler: StorageHandler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative paths, bare or as file://rel, resolve against the working directory."""
    (tmp_path / "models" / "iris").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert await handler.fetch("models/iris") == tmp_path / "models" / "iris"
    assert await handler.fetch("file://models/iris") == tmp_path / "models" / "iris"


async def test_single_file_is_allowed(handler: StorageHandler, tmp_path: Path) -> None:
    """An artifact may be a single file."""
    (tmp_path / "model.joblib").write_bytes(b"x")
    assert await handler.fetch(str(tmp_path / "model.joblib")) == tmp_path / "model.joblib"


async def test_local_paths_need_no_secret(handler: StorageHandler, tmp_path: Path) -> None:
    """In-place fetches do not resolve secrets, so an unknown secret name does not matter."""
    (tmp_path / "m").mkdir()
    assert await handler.fetch(str(tmp_path / "m"), secret_name="unknown") == tmp_path / "m"


async def test_unsupported_scheme_is_invalid(handler: StorageHandler) -> None:
    """An unknown scheme is an InvalidError on spec.storageUri listing what is supported."""
    with pytest.raises(InvalidError) as caught:
        await handler.fetch("ftp://host/iris")
    assert caught.value.field == "spec.storageUri"
    assert "unsupported scheme 'ftp' (supported: file, local path, mem (tests))" in caught.value.message


async def test_missing_path_is_not_found(handler: StorageHandler, tmp_path: Path) -> None:
    """A path that does not exist is a NotFoundError naming the path."""
    with pytest.raises(NotFoundError) as caught:
        await handler.fetch(str(tmp_path / "nope"))
    assert str(tmp_path / "nope") in caught.value.message


async def test_empty_uri_is_invalid(handler: StorageHandler) -> None:
    """An empty URI is an InvalidError on spec.storageUri."""
    with pytest.raises(InvalidError) as caught:
        await handler.fetch("  ")
    assert caught.value.field == "spec.storageUri"


# ---- routing ----------------------------------------------------------------------------------


def test_azure_blob_urls_get_their_own_scheme() -> None:
    """Azure blob URLs (host style, or path style under a configured endpoint) route to Azure."""
    assert scheme_of("https://acct.blob.core.windows.net/models/iris") == AZURE_BLOB_SCHEME
    assert scheme_of("https://example.com/iris.tar.gz") == "https"
    assert scheme_of("http://127.0.0.1:8000/iris.zip") == "http"
    assert scheme_of("S3://bucket/iris") == "s3"
    assert scheme_of("/abs/path") == ""
    emulator = "http://127.0.0.1:10000/devstoreaccount1/models/iris"
    assert scheme_of(emulator) == "http"
    assert scheme_of(
        emulator, {"AZURE_STORAGE_BLOB_ENDPOINT": "http://127.0.0.1:10000/devstoreaccount1"}
    ) == (AZURE_BLOB_SCHEME)


def test_default_registry_serves_every_documented_scheme(tmp_path: Path) -> None:
    """The default registry covers paths, file, s3, gs, azure blob, http(s), hf and pvc."""
    assert set(default_registry(tmp_path, LocalRoots.of([tmp_path])).schemes()) >= {
        "",
        "file",
        "s3",
        "gs",
        AZURE_BLOB_SCHEME,
        "http",
        "https",
        "hf",
        "pvc",
    }


def test_display_uri_drops_userinfo() -> None:
    """A URI's user:password never reaches logs or progress events."""
    assert display_uri("https://user:pw@host/x.tar") == "https://host/x.tar"
    assert display_uri("s3://bucket/x") == "s3://bucket/x"


# ---- remote fetches ---------------------------------------------------------------------------


async def test_remote_fetch_goes_through_the_cache(handler: StorageHandler, fetcher: MemoryFetcher) -> None:
    """A remote artifact is downloaded once and served from the cache afterwards."""
    first = await handler.fetch(f"{SCHEME}://iris")
    second = await handler.fetch(f"{SCHEME}://iris")
    assert first == second
    assert (first / "model.joblib").read_bytes() == b"x" * 5000
    assert fetcher.downloads == 1


async def test_named_secret_reaches_the_fetcher(handler: StorageHandler, fetcher: MemoryFetcher) -> None:
    """The model's secret is resolved and handed to the fetcher as credentials."""
    await handler.fetch(f"{SCHEME}://iris", secret_name="s3")
    assert fetcher.seen_credentials == [{"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": SECRET_VALUE}]


async def test_default_secret_reaches_the_fetcher(
    fetcher: MemoryFetcher, cache: StorageCache, secrets_dir: Path
) -> None:
    """Without a secret name the configured default secret is used."""
    handler = StorageHandler(FetcherRegistry([fetcher]), cache, SecretStore(secrets_dir, "fallback"))
    await handler.fetch(f"{SCHEME}://iris")
    assert fetcher.seen_credentials == [{"HF_TOKEN": "hf_default"}]


async def test_unknown_secret_is_not_found(handler: StorageHandler) -> None:
    """A remote fetch naming a missing secret fails with NotFoundError on spec.secretName."""
    with pytest.raises(NotFoundError) as caught:
        await handler.fetch(f"{SCHEME}://iris", secret_name="missing")
    assert caught.value.field == "spec.secretName"
    assert "secret missing not found" in str(caught.value)


async def test_credentials_never_reach_errors_or_logs(cache: StorageCache, secrets_dir: Path) -> None:
    """Even when a fetcher quotes a credential, the error and the log lines do not contain it."""
    leaky = LeakyFetcher(artifacts={"iris": {"model.joblib": b"x"}})
    handler = StorageHandler(FetcherRegistry([leaky]), cache, SecretStore(secrets_dir))
    with capture_logs() as logs, pytest.raises(InvalidError) as caught:
        await handler.fetch(f"{SCHEME}://iris", secret_name="s3")
    assert SECRET_VALUE not in str(caught.value)
    assert "***" in str(caught.value)
    assert SECRET_VALUE not in repr(logs)


# ---- progress ---------------------------------------------------------------------------------


async def test_progress_of_a_download(
    handler: StorageHandler, fetcher: MemoryFetcher, sink: ListSink
) -> None:
    """A download reports phase downloading while it runs and done with every byte at the end."""
    fetcher.gate = asyncio.Event()
    key = ProgressKey(model="iris", version=3)
    pending = asyncio.ensure_future(handler.fetch(f"{SCHEME}://iris", progress_key=key))
    await fetcher.started.wait()
    await sink.wait_for_bytes()
    fetcher.gate.set()
    await pending
    assert {e.phase for e in sink.events[:-1]} == {"downloading"}
    last = sink.events[-1]
    assert (last.phase, last.bytes_done, last.bytes_total) == ("done", 5000, 5000)
    assert (last.model, last.version, last.uri) == ("iris", 3, f"{SCHEME}://iris")
    await handler.fetch(f"{SCHEME}://iris", progress_key=key)
    assert sink.events[-1].phase == "cached"


async def test_progress_of_a_failed_download(
    handler: StorageHandler, fetcher: MemoryFetcher, sink: ListSink
) -> None:
    """A download that fails ends with phase failed."""
    fetcher.fail_after = 2000
    with pytest.raises(Exception, match="reset"):
        await handler.fetch(f"{SCHEME}://iris", progress_key=ProgressKey("iris", 1))
    assert sink.events[-1].phase == "failed"


async def test_no_progress_without_a_model(handler: StorageHandler, sink: ListSink) -> None:
    """A fetch that names no model publishes no progress."""
    await handler.fetch(f"{SCHEME}://iris")
    assert sink.events == []
