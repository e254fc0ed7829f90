"""The Hugging Face fetcher's progress bars: bytes reach Progress, a cancelled fetch stops its thread."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from modelplane.services.storage.fetchers.huggingface import _BYTES_BAR, ByteBars
from modelplane.services.storage.fetchers.objects import ThreadedDownload
from tests.helpers.progress import RecordingProgress

CHUNK = 1024


async def _until(check: threading.Event | RecordingProgress, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not (check.is_set() if isinstance(check, threading.Event) else check.done > 0):
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.01)


async def test_byte_bar_reports_bytes_and_other_bars_do_not() -> None:
    """Only snapshot_download's bytes bar counts; the files bar (thread_map) is ignored."""
    progress = RecordingProgress()
    bars = ByteBars()

    def work(bridge: ThreadedDownload) -> None:
        bar_class = bars.tqdm_class(bridge)
        with (
            bar_class(total=3, unit="it", name="files") as files,
            bar_class(total=3 * CHUNK, unit="B", name=_BYTES_BAR) as written,
        ):
            for _ in range(3):
                written.update(CHUNK)
                files.update(1)

    await ThreadedDownload(progress).run(work)
    assert progress.done == 3 * CHUNK
    assert bars.reported == 3 * CHUNK


async def test_cancelled_download_stops_its_thread_before_returning() -> None:
    """Cancelling raises inside the worker at its next update; run() returns after the thread ended."""
    progress = RecordingProgress()
    bars = ByteBars()
    finished = threading.Event()

    def work(bridge: ThreadedDownload) -> None:
        try:
            bar = bars.tqdm_class(bridge)(total=None, unit="B", name=_BYTES_BAR)
            while True:  # an endless download: only cancellation ends it
                bar.update(CHUNK)
                time.sleep(0.001)  # a network read
        finally:
            finished.set()

    download = asyncio.ensure_future(ThreadedDownload(progress).run(work))
    await _until(progress)
    download.cancel()
    with pytest.raises(asyncio.CancelledError):
        await download
    assert finished.is_set()
