"""StorageCache: content addressing, shared downloads, partial downloads never used, LRU limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from modelplane.libs.errors import PermanentError, RetryableError
from modelplane.services.storage.cache import PARTIAL, StorageCache, cache_key
from modelplane.services.storage.fetchers.base import FetchTarget

from .memory_fetcher import SCHEME, MemoryFetcher

KIB = 1024


def _target(name: str, artifact_version: str = "") -> FetchTarget:
    return FetchTarget(uri=f"{SCHEME}://{name}", scheme=SCHEME, artifact_version=artifact_version)


@pytest.fixture
def fetcher() -> MemoryFetcher:
    return MemoryFetcher(
        artifacts={
            "a": {"model.joblib": b"a" * 4 * KIB},
            "b": {"model.joblib": b"b" * 4 * KIB},
            "c": {"model.joblib": b"c" * 4 * KIB},
            "folder": {"model-settings.json": b"{}", "sub/weights.bin": b"w" * 3 * KIB},
            "empty": {},
        }
    )


async def _make_cache(root: Path, max_bytes: int) -> StorageCache:
    cache = StorageCache(root, max_bytes)
    await cache.start()
    return cache


@pytest.fixture
async def cache(tmp_path: Path) -> AsyncIterator[StorageCache]:
    cache = await _make_cache(tmp_path / "cache", 1024 * KIB)
    try:
        yield cache
    finally:
        await cache.close()


async def _get(cache: StorageCache, fetcher: MemoryFetcher, target: FetchTarget) -> Path:
    async with cache.checkout(fetcher, target) as checkout:
        return await checkout.path()


def _partials(cache: StorageCache) -> list[Path]:
    return list((cache.root / PARTIAL).iterdir())


async def test_second_fetch_is_a_hit(cache: StorageCache, fetcher: MemoryFetcher) -> None:
    """The same URI with unchanged content is downloaded once; the hit says it is cached."""
    first = await _get(cache, fetcher, _target("a"))
    async with cache.checkout(fetcher, _target("a")) as checkout:
        assert checkout.cached
        second = await checkout.path()
    assert first == second
    assert (first / "model.joblib").read_bytes() == b"a" * 4 * KIB
    assert fetcher.downloads == 1


async def test_folder_layout_is_kept(cache: StorageCache, fetcher: MemoryFetcher) -> None:
    """A multi-file artifact keeps its relative layout inside the entry."""
    path = await _get(cache, fetcher, _target("folder"))
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()) == [
        "model-settings.json",
        "sub/weights.bin",
    ]


async def test_changed_content_is_a_miss(cache: StorageCache, fetcher: MemoryFetcher) -> None:
    """When the fetcher's identity changes (new content under the same URI) it downloads again."""
    first = await _get(cache, fetcher, _target("a"))
    fetcher.artifacts["a"] = {"model.joblib": b"new"}
    second = await _get(cache, fetcher, _target("a"))
    assert second != first
    assert (second / "model.joblib").read_bytes() == b"new"
    assert fetcher.downloads == 2


async def test_artifact_version_is_part_of_the_key(cache: StorageCache, fetcher: MemoryFetcher) -> None:
    """Another artifactVersion of the same URI is another entry."""
    assert await _get(cache, fetcher, _target("a", "v1")) != await _get(cache, fetcher, _target("a", "v2"))
    assert fetcher.downloads == 2


async def test_concurrent_fetches_share_one_download(cache: StorageCache, fetcher: MemoryFetcher) -> None:
    """Two fetches of one artifact while it downloads get the same entry from one download."""
    fetcher.gate = asyncio.Event()
    first = asyncio.ensure_future(_get(cache, fetcher, _target("a")))
    await fetcher.started.wait()
    second = asyncio.ensure_future(_get(cache, fetcher, _target("a")))
    # The second caller must have joined the download before it is allowed to finish.
    await fetcher.wait_for_fetches(2)
    fetcher.gate.set()
    paths = await asyncio.gather(first, second)
    assert paths[0] == paths[1]
    assert fetcher.downloads == 1


async def test_failed_download_fails_every_waiter(cache: StorageCache, fetcher: MemoryFetcher) -> None:
    """A download that fails halfway gives its error to each caller waiting for it."""
    fetcher.gate = asyncio.Event()
    fetcher.fail_after = 2 * KIB
    first = asyncio.ensure_future(_get(cache, fetcher, _target("a")))
    await fetcher.started.wait()
    second = asyncio.ensure_future(_get(cache, fetcher, _target("a")))
    await fetcher.wait_for_fetches(2)
    fetcher.gate.set()
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert all(isinstance(r, RetryableError) for r in results)
    assert fetcher.downloads == 1


async def test_killed_download_leaves_nothing_and_is_retried(
    cache: StorageCache, fetcher: MemoryFetcher
) -> None:
    """Bytes written before a failure are never used: no entry, no partial, next fetch downloads."""
    fetcher.fail_after = 2 * KIB
    with pytest.raises(RetryableError, match="reset"):
        await _get(cache, fetcher, _target("a"))
    assert cache.entries() == []
    assert _partials(cache) == []
    path = await _get(cache, fetcher, _target("a"))
    assert (path / "model.joblib").read_bytes() == b"a" * 4 * KIB
    assert fetcher.downloads == 2


async def test_empty_artifact_is_not_cached(cache: StorageCache, fetcher: MemoryFetcher) -> None:
    """A download that writes nothing is an error, not an empty entry."""
    with pytest.raises(PermanentError, match="empty"):
        await _get(cache, fetcher, _target("empty"))
    assert cache.entries() == []


async def test_entry_another_process_completed_first_is_used(
    cache: StorageCache, fetcher: MemoryFetcher
) -> None:
    """When the entry appears while we download (another process won), theirs is used."""
    fetcher.gate = asyncio.Event()
    pending = asyncio.ensure_future(_get(cache, fetcher, _target("a")))
    await fetcher.started.wait()
    key = cache_key(_target("a").uri, "", await fetcher.identity(_target("a")))
    theirs = cache.root / key
    theirs.mkdir()
    (theirs / "model.joblib").write_bytes(b"theirs")
    fetcher.gate.set()
    assert await pending == theirs
    assert (theirs / "model.joblib").read_bytes() == b"theirs"
    assert _partials(cache) == []


async def test_stale_partials_are_removed_at_start(tmp_path: Path, fetcher: MemoryFetcher) -> None:
    """Partial downloads left by a previous process are deleted by start() and never served."""
    stale = tmp_path / "cache" / PARTIAL / "0123-abcd"
    stale.mkdir(parents=True)
    (stale / "model.joblib").write_bytes(b"half")
    cache = await _make_cache(tmp_path / "cache", 1024 * KIB)
    try:
        assert not stale.exists()
        assert await _get(cache, fetcher, _target("a")) != stale
        assert fetcher.downloads == 1
    finally:
        await cache.close()


async def test_lru_eviction_keeps_the_cache_under_its_limit(tmp_path: Path, fetcher: MemoryFetcher) -> None:
    """After a new entry, least-recently-used entries go until the total fits the limit."""
    cache = await _make_cache(tmp_path / "cache", 10 * KIB)
    try:
        a = await _get(cache, fetcher, _target("a"))
        b = await _get(cache, fetcher, _target("b"))
        await _get(cache, fetcher, _target("a"))  # a is now more recently used than b
        c = await _get(cache, fetcher, _target("c"))
        assert a.exists()
        assert c.exists()
        assert not b.exists()
        assert cache.size() <= 10 * KIB
        assert fetcher.downloads == 3
    finally:
        await cache.close()


async def test_artifact_larger_than_the_limit_is_kept_alone(tmp_path: Path, fetcher: MemoryFetcher) -> None:
    """A limit below one artifact keeps the newest artifact, evicts the rest and warns."""
    cache = await _make_cache(tmp_path / "cache", 1 * KIB)
    try:
        await _get(cache, fetcher, _target("a"))
        with capture_logs() as logs:
            b = await _get(cache, fetcher, _target("b"))
        assert cache.entries() == [b.name]
        assert any(entry["event"] == "cache_over_limit" for entry in logs)
    finally:
        await cache.close()


async def test_entry_in_use_is_not_evicted(tmp_path: Path, fetcher: MemoryFetcher) -> None:
    """An entry whose checkout is still open survives eviction caused by a newer entry."""
    cache = await _make_cache(tmp_path / "cache", 5 * KIB)
    try:
        async with cache.checkout(fetcher, _target("a")) as held:
            a = await held.path()
            b = await _get(cache, fetcher, _target("b"))
            assert a.exists()
            assert b.exists()
        c = await _get(cache, fetcher, _target("c"))
        assert cache.entries() == [c.name]
    finally:
        await cache.close()
