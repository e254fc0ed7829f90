"""Content-addressed cache of remote artifacts, with de-duplicated downloads and LRU cleanup.

Design:
- Key = sha256(uri + "\\n" + artifact_version + "\\n" + fetcher.identity(target)). The identity
  is the fetcher's cheap listing (names, sizes, ETags/generations/revisions), so a changed
  object under the same URI gets a new entry and an unchanged one is never downloaded again.
- Layout: ``<root>/<key>/`` holds complete entries only. A download goes to
  ``<root>/.partial/<key>-<random>/``; once ``download`` returns it is verified (not empty; the
  bytes the fetcher reported equal the total it announced, when it announced one) and renamed
  into place in one ``os.rename``. If another process renamed first, its entry is used. A
  partial directory is therefore never handed out, and stale ones are removed at ``start``.
- In this process, concurrent checkouts of one key share one download: the first creates a
  future and an owned task; the others await the same future. A failed download is not
  cached; every waiter gets its error, and the next checkout tries again.
- Last use is the entry directory's mtime (touched on every checkout), so the agent's copy of
  the artifact sees exactly what the fetcher wrote (no marker files inside). After each new
  entry, least-recently-used complete entries are removed until the total is <= ``max_bytes``;
  an entry checked out right now (its reply still pending) is never removed. An entry is
  removed by renaming it under ``.partial`` first, so a reader never sees half of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from modelplane.libs.errors import PermanentError, RetryableError
from modelplane.libs.tasks import TaskSupervisor
from modelplane.services.storage.fetchers.base import ArtifactTooLarge, FetchTarget
from modelplane.services.storage.fetchers.registry import RemoteFetcher

log = structlog.get_logger(__name__)

PARTIAL = ".partial"
_KEY = re.compile(r"^[0-9a-f]{64}$")


def cache_key(uri: str, artifact_version: str, identity: str) -> str:
    """The entry name of one artifact's content."""
    return hashlib.sha256(f"{uri}\n{artifact_version}\n{identity}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class MeterReading:
    bytes_done: int
    # 0 while the fetcher has not said how large the artifact is.
    bytes_total: int
    bytes_per_second: float


class Meter:
    """The cache's ``Progress``: counts what a download reports (fetchers may call from threads).

    With a ``limit`` it is also the size cap: an announced total or a running count above it
    raises ArtifactTooLarge in the fetcher, which stops writing (at most one chunk too many).
    """

    def __init__(self, limit: int | None = None) -> None:
        self._lock = threading.Lock()
        self._done = 0
        self._total: int | None = None
        self._started = time.monotonic()
        self._limit = limit

    @property
    def max_bytes(self) -> int | None:
        """The cap (``base.SizeCapped``); None: unbounded."""
        return self._limit

    def total(self, total_bytes: int) -> None:
        with self._lock:
            self._total = total_bytes
        if self._limit is not None and total_bytes > self._limit:
            raise ArtifactTooLarge(self._limit)

    def advance(self, n_bytes: int) -> None:
        with self._lock:
            self._done += n_bytes
            done = self._done
        if self._limit is not None and done > self._limit:
            raise ArtifactTooLarge(self._limit)

    @property
    def announced_total(self) -> int | None:
        with self._lock:
            return self._total

    def read(self) -> MeterReading:
        with self._lock:
            done, total = self._done, self._total
        elapsed = time.monotonic() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        return MeterReading(bytes_done=done, bytes_total=total or 0, bytes_per_second=rate)


class Checkout:
    """One caller's view of an entry: already complete (``cached``) or being downloaded."""

    def __init__(self, key: str, future: asyncio.Future[Path], meter: Meter, *, cached: bool) -> None:
        self.key = key
        self.meter = meter
        self.cached = cached
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the download; True once it has finished."""
        if not self._future.done():
            # asyncio.wait never cancels what it waits for, so a caller that gives up (or is
            # cancelled) leaves the shared download running for the others.
            await asyncio.wait({self._future}, timeout=timeout)
        return self._future.done()

    async def path(self) -> Path:
        """The complete entry's directory; raises the download's error."""
        return await asyncio.shield(self._future)


class StorageCache:
    """Directory cache shared by every fetch of this process (and safe to share across processes)."""

    def __init__(self, root: Path, max_bytes: int, max_artifact_bytes: int | None = None) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        # Real path: the agent refuses an artifact path that is not its own real path.
        self.root = Path(os.path.realpath(root))
        self.max_bytes = max_bytes
        # Bytes one download may write (None: unbounded); enforced by its Meter while it streams.
        self.max_artifact_bytes = max_artifact_bytes
        self._partial = root / PARTIAL
        self._inflight: dict[str, tuple[asyncio.Future[Path], Meter]] = {}
        self._in_use: Counter[str] = Counter()
        self._tasks = TaskSupervisor("storage-cache")
        self._clock = _UseClock()
        # Eviction scans the directory; one at a time keeps the totals it computes honest.
        self._evicting = asyncio.Lock()

    async def start(self) -> None:
        """Create the directories and remove downloads a previous process left unfinished."""
        removed = await asyncio.to_thread(self._prepare)
        if removed:
            log.info("cache_partials_removed", count=removed, cache_dir=str(self.root))

    async def close(self) -> None:
        """Cancel downloads in progress (their partial directories are removed); idempotent."""
        await self._tasks.close()

    def _prepare(self) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        removed = 0
        if self._partial.exists():
            for stale in self._partial.iterdir():
                _remove(stale)
                removed += 1
        self._partial.mkdir(exist_ok=True)
        return removed

    @contextlib.asynccontextmanager
    async def checkout(self, fetcher: RemoteFetcher, target: FetchTarget) -> AsyncIterator[Checkout]:
        """Yield the entry of ``target``'s current content, downloading it at most once.

        The entry is protected from eviction until the ``async with`` block ends.
        """
        identity = await fetcher.identity(target)
        key = cache_key(target.uri, target.artifact_version, identity)
        self._in_use[key] += 1
        try:
            yield await self._checkout(key, fetcher, target)
        finally:
            self._in_use[key] -= 1
            if self._in_use[key] <= 0:
                del self._in_use[key]

    async def _checkout(self, key: str, fetcher: RemoteFetcher, target: FetchTarget) -> Checkout:
        inflight = self._inflight.get(key)
        if inflight is not None:
            future, meter = inflight
            return Checkout(key, future, meter, cached=False)
        entry = self.root / key
        if await asyncio.to_thread(self._clock.touch_if_complete, entry):
            future = asyncio.get_running_loop().create_future()
            future.set_result(entry)
            return Checkout(key, future, Meter(), cached=True)
        future = asyncio.get_running_loop().create_future()
        # Nobody may be waiting when a download fails (all callers gave up): mark it retrieved.
        future.add_done_callback(_retrieve)
        meter = Meter(self.max_artifact_bytes)
        self._inflight[key] = (future, meter)
        self._tasks.spawn(f"download[{key[:12]}]", self._download(key, fetcher, target, meter, future))
        return Checkout(key, future, meter, cached=False)

    async def _download(
        self,
        key: str,
        fetcher: RemoteFetcher,
        target: FetchTarget,
        meter: Meter,
        future: asyncio.Future[Path],
    ) -> None:
        partial = self._partial / f"{key}-{secrets.token_hex(4)}"
        try:
            try:
                await asyncio.to_thread(partial.mkdir, parents=True)
                await fetcher.download(target, partial, meter)
                await asyncio.to_thread(_verify, partial, meter, target.uri)
                entry = await asyncio.to_thread(self._install, partial, key)
            finally:
                # Gone before anyone hears the outcome: a failed download leaves nothing behind.
                await asyncio.to_thread(_remove, partial)
            # Before answering, so a caller that got its path finds the cache within its limit.
            await self._evict(keep=key)
        except asyncio.CancelledError:
            # Only close() cancels a download; waiters get an error they can retry, not a
            # CancelledError that would look like their own cancellation.
            future.set_exception(RetryableError(f"the download of {target.uri} was stopped"))
            raise
        except Exception as exc:
            future.set_exception(exc)
        else:
            future.set_result(entry)
        finally:
            self._inflight.pop(key, None)

    def _install(self, partial: Path, key: str) -> Path:
        entry = self.root / key
        try:
            os.rename(partial, entry)
        except OSError:
            # Another process (or an earlier run) completed the same content first: use theirs.
            if not entry.is_dir():
                raise
            log.debug("cache_entry_raced", key=key)
        self._clock.stamp(entry)
        return entry

    async def _evict(self, keep: str) -> None:
        async with self._evicting:
            protected = set(self._in_use) | set(self._inflight) | {keep}
            try:
                await asyncio.to_thread(self._evict_sync, protected, keep)
            except OSError as exc:  # a full or read-only disk must not fail the fetch itself
                log.error("cache_eviction_failed", error=repr(exc))

    def _evict_sync(self, protected: set[str], keep: str) -> None:
        entries = []
        for child in self.root.iterdir():
            if not _KEY.match(child.name) or not child.is_dir():
                continue
            try:
                mtime = child.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            entries.append((mtime, child, _size(child)))
        total = sum(size for _, _, size in entries)
        for _, child, size in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            if child.name in protected:
                continue
            trash = self._partial / f"evict-{child.name}-{secrets.token_hex(4)}"
            try:
                os.rename(child, trash)
            except FileNotFoundError:  # another process evicted it first
                total -= size
                continue
            _remove(trash)
            total -= size
            log.info("cache_entry_evicted", key=child.name, bytes=size)
        if total > self.max_bytes:
            kept = sum(size for _, child, size in entries if child.name == keep)
            log.warning(
                "cache_over_limit",
                total_bytes=total,
                max_bytes=self.max_bytes,
                newest_entry_bytes=kept,
                reason="entries in use or one artifact larger than the limit are kept",
            )

    def size(self) -> int:
        """Bytes held by complete entries (blocking; for tests and diagnostics)."""
        return sum(_size(c) for c in self.root.iterdir() if _KEY.match(c.name) and c.is_dir())

    def in_use(self) -> list[str]:
        """Keys of entries checked out right now, i.e. protected from eviction (for diagnostics)."""
        return sorted(self._in_use)

    def entries(self) -> list[str]:
        """Keys of complete entries (blocking; for tests and diagnostics)."""
        return sorted(c.name for c in self.root.iterdir() if _KEY.match(c.name) and c.is_dir())


def _retrieve(future: asyncio.Future[Path]) -> None:
    if not future.cancelled():
        future.exception()


class _UseClock:
    """Stamps an entry's mtime with "now", strictly later than this cache's previous stamp.

    File system clocks tick every few milliseconds; two uses within one tick would otherwise
    look simultaneous and make the LRU order arbitrary.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def stamp(self, entry: Path) -> None:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            now = self._last
        os.utime(entry, ns=(now, now))

    def touch_if_complete(self, entry: Path) -> bool:
        try:
            self.stamp(entry)
        except FileNotFoundError:
            return False
        return entry.is_dir()


def _verify(partial: Path, meter: Meter, uri: str) -> None:
    if not any(partial.iterdir()):
        raise PermanentError(f"the artifact at {uri} is empty")
    announced = meter.announced_total
    done = meter.read().bytes_done
    if announced is not None and done != announced:
        raise RetryableError(f"the download of {uri} is incomplete: {done} of {announced} bytes")


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
