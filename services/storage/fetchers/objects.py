"""What the bucket fetchers (gs, azure blob) share: object selection, identity, threaded download.

A bucket URI names either one object or a "folder" (a key prefix). ``select_objects`` turns a
listing into the objects to fetch and where each lands under the download directory, following
the rule in ``base.Fetcher.download``: the object whose name equals the path lands as
``dest/<base name>``; objects under ``<path>/`` keep their layout relative to it. Keys that
would escape the directory (``..``, absolute) are refused, so a hostile bucket cannot write
outside the cache.

The SDKs are blocking, so a download runs in one worker thread. ``ThreadedDownload`` lets that
thread report progress on the event loop (the cache's ``Progress`` is not thread-safe) and stop
early when the awaiting task is cancelled: the next progress report raises ``Cancelled`` inside
the thread, and the cancelled ``run`` waits (a bounded time) for the thread to unwind, so once it
returns nothing writes into the download directory any more and the cache can remove it. The S3,
GCS and Azure fetchers all download this way.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import BinaryIO

from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.services.storage.fetchers.base import ArtifactTooLarge, Progress, SizeCapped

FIELD = "spec.storageUri"
# Seconds a cancelled download waits for its thread to notice (it does at the next chunk it
# receives; a stalled connection only at the SDK's read timeout, which we do not wait for).
STOP_WAIT_S = 10.0


@dataclass(frozen=True, slots=True)
class RemoteObject:
    """One object to fetch: its full name in the bucket/container and where it lands."""

    name: str
    size: int
    # What changes when the content changes: generation/MD5 for GCS, the ETag for Azure.
    version: str
    # Path relative to the download directory, "/"-separated.
    relative: str


def select_objects(uri: str, path: str, listing: Iterable[tuple[str, int, str]]) -> list[RemoteObject]:
    """The objects of ``listing`` (name, size, version) that ``path`` names, sorted by name.

    ``path`` "" means the whole bucket. Raises NotFoundError when nothing matches.
    """
    base = path.rstrip("/")
    folder = f"{base}/" if base else ""
    selected: list[RemoteObject] = []
    for name, size, version in listing:
        if name.endswith("/"):
            continue  # a "directory marker" some tools create; it holds no content
        if base and name == base:
            relative = PurePosixPath(name).name
        elif name.startswith(folder):
            relative = name[len(folder) :]
        else:
            continue  # shares the prefix but is a sibling ("models2/x" for path "models")
        selected.append(RemoteObject(name, size, version, _checked_relative(uri, name, relative)))
    if not selected:
        raise NotFoundError(f"no object or folder at {uri}", field=FIELD)
    return sorted(selected, key=lambda o: o.name)


def identity_of(objects: Iterable[RemoteObject]) -> str:
    """A digest of names, sizes and versions: changes whenever any object changes."""
    lines = sorted(f"{o.name}:{o.size}:{o.version}" for o in objects)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _checked_relative(uri: str, name: str, relative: str) -> str:
    parts = PurePosixPath(relative).parts
    if not relative or relative.startswith("/") or any(p in ("..", ".") for p in parts) or "\\" in relative:
        raise InvalidError(
            f"object {name!r} in {uri} cannot be stored safely: it would be written outside the target directory",
            field=FIELD,
        )
    return relative


class Cancelled(Exception):
    """Raised inside the download thread once the awaiting task was cancelled."""


class ThreadedDownload:
    """Runs a blocking download in a worker thread, bridging progress and cancellation."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # What a progress report raised (the size cap): the thread stops and ``run`` raises it.
        self._error: Exception | None = None
        # The cap, counted here as well: the writing threads stop themselves at the next chunk.
        self._max_bytes = progress.max_bytes if isinstance(progress, SizeCapped) else None
        self._written = 0
        self._count_lock = threading.Lock()

    async def run(self, work: Callable[[ThreadedDownload], None]) -> None:
        """Await ``work(self)`` in a thread; cancelling the caller stops the thread, then re-raises."""
        self._loop = loop = asyncio.get_running_loop()
        # Like asyncio.to_thread, but keeping the future: a cancelled caller still waits for it.
        call = functools.partial(contextvars.copy_context().run, work, self)
        worker = loop.run_in_executor(None, call)
        try:
            await asyncio.shield(worker)
        except asyncio.CancelledError:
            self._stop.set()
            # Its outcome (most likely Cancelled) is of no interest to anyone now.
            worker.add_done_callback(_retrieve)
            await asyncio.wait({worker}, timeout=STOP_WAIT_S)
            raise
        except Exception:
            # The SDK may wrap what our callback raised in the thread; the report's error wins.
            if self._error is not None:
                raise self._error from None
            raise
        if self._error is not None:
            raise self._error

    @property
    def stopped(self) -> bool:
        """True once the awaiting task was cancelled (the worker should give up)."""
        return self._stop.is_set()

    def total(self, total_bytes: int) -> None:
        """From the worker thread: report the artifact's size."""
        self._call(self._progress.total, total_bytes)

    def advance(self, n_bytes: int) -> None:
        """From the worker thread: report bytes written; raises Cancelled when told to stop."""
        if self._stop.is_set():
            raise self._error if self._error is not None else Cancelled
        if self._max_bytes is not None:
            with self._count_lock:
                self._written += n_bytes
                over = self._written > self._max_bytes
            if over:
                self._error = ArtifactTooLarge(self._max_bytes)
                self._stop.set()
                raise self._error
        self._call(self._progress.advance, n_bytes)

    def open(self, dest: Path, obj: RemoteObject) -> CountingFile:
        """A new file for ``obj`` under ``dest`` (parents created) that reports its writes."""
        target = dest.joinpath(*PurePosixPath(obj.relative).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return CountingFile(target.open("wb"), self)

    def _call(self, fn: Callable[[int], None], n: int) -> None:
        assert self._loop is not None, "run() sets the loop before the thread starts"
        # Scheduled in order and before the thread's result is delivered, so every report lands
        # before ``run`` returns.
        self._loop.call_soon_threadsafe(self._report, fn, n)

    def _report(self, fn: Callable[[int], None], n: int) -> None:
        if self._error is not None:
            return
        try:
            fn(n)
        except Exception as exc:
            self._error = exc
            self._stop.set()


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class CountingFile:
    """A binary file that reports each write to a ``ThreadedDownload`` (SDKs write in chunks)."""

    def __init__(self, file: BinaryIO, download: ThreadedDownload) -> None:
        self._file = file
        self._download = download

    def write(self, data: bytes) -> int:
        written = self._file.write(data)
        self._download.advance(len(data))
        return written

    def flush(self) -> None:
        self._file.flush()

    def tell(self) -> int:
        return self._file.tell()

    def __enter__(self) -> CountingFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()
