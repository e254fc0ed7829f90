"""Following a model while it loads: `modelplane model load` without --no-wait.

Design: the api's FollowModel stream delivers the model's status (the current one first, then
every change) and the storage service's live download reports. ``follow_load`` folds those
events into a decision (``load_outcome``) and hands what changed to a display:

- ``PlainDisplay`` (stdout is not a terminal: scripts, CI, tests) prints one line per state
  change and per download phase change, never a line per report;
- ``BarDisplay`` (a terminal) redraws one progress bar line in place while a version downloads
  and prints the same state lines above it.

The text itself comes from pure functions (``progress_bar``, ``state_line``, ``download_line``)
so it is tested without a terminal. A status counts only once it describes the applied
generation (``observed_generation``): right after an update the old version's ModelAvailable
must not end the wait.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from enum import Enum
from typing import IO, Protocol

from modelplane.cli.render import download_summary, format_size
from modelplane.proto import control_pb2, state_pb2

MODEL_AVAILABLE = "ModelAvailable"
MODEL_SCALED_DOWN = "ModelScaledDown"
MODEL_FAILED = "ModelFailed"
# Columns the bar itself takes (between the brackets) when the terminal is wide enough.
BAR_WIDTH = 30


class Outcome(Enum):
    WAITING = "waiting"
    READY = "ready"
    FAILED = "failed"


class ModelDeleted(Exception):
    """The model was deleted while it was followed."""


def load_outcome(status: state_pb2.ResourceStatus, generation: int) -> Outcome:
    """Whether a load of ``generation`` is over: ready (Available, or ScaledDown for a model
    with no replicas wanted), failed (ModelFailed), or still waiting."""
    if status.observed_generation < generation:
        return Outcome.WAITING
    if status.state in (MODEL_AVAILABLE, MODEL_SCALED_DOWN):
        return Outcome.READY
    if status.state == MODEL_FAILED:
        return Outcome.FAILED
    return Outcome.WAITING


def state_line(name: str, status: state_pb2.ResourceStatus) -> str:
    """``model/iris: ModelProgressing (0 of 1 replicas available)``."""
    reason = f" ({status.reason})" if status.reason else ""
    if status.state == MODEL_AVAILABLE:
        reason = f" ({status.available_replicas}/{status.total_replicas} replicas)"
    return f"model/{name}: {status.state or 'Unknown'}{reason}"


def download_line(name: str, download: state_pb2.DownloadStatus) -> str:
    """A download phase change: ``model/iris: version 1 downloading 0 B / 200.0 MiB from s3://...``."""
    text = f"model/{name}: version {download.version} {download_summary(download)}"
    if download.phase == "downloading" and download.uri:
        text += f" from {download.uri}"
    return text


def progress_bar(name: str, download: state_pb2.DownloadStatus, columns: int = 80) -> str:
    """One terminal line, at most ``columns`` wide:
    ``iris v1 [#########.....................]  30% 60.0 MiB / 200.0 MiB  12.3 MiB/s``.
    Without a known total there is no bar, only the bytes and the rate."""
    head = f"{name} v{download.version} "
    rate = f"  {format_size(download.bytes_per_second)}/s" if download.bytes_per_second > 0 else ""
    if download.bytes_total <= 0:
        return (head + f"{format_size(download.bytes_done)}{rate}")[:columns]
    fraction = min(1.0, max(0.0, download.bytes_done / download.bytes_total))
    numbers = (
        f" {fraction * 100:3.0f}% {format_size(download.bytes_done)} / {format_size(download.bytes_total)}"
        f"{rate}"
    )
    width = min(BAR_WIDTH, columns - len(head) - len(numbers) - 2)
    if width < 5:  # too narrow for a bar: the numbers alone
        return (head + numbers.lstrip())[:columns]
    filled = int(fraction * width)
    return f"{head}[{'#' * filled}{'.' * (width - filled)}]{numbers}"


class Display(Protocol):
    def state(self, name: str, status: state_pb2.ResourceStatus) -> None:
        """The model's state changed."""

    def download(self, name: str, download: state_pb2.DownloadStatus, phase_changed: bool) -> None:
        """A download report (``phase_changed``: its first report or a new phase)."""

    def finish(self) -> None:
        """The follow is over (leave the terminal on a fresh line)."""


class PlainDisplay:
    """Lines only at changes: fit for logs and scripts."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self._echo = echo

    def state(self, name: str, status: state_pb2.ResourceStatus) -> None:
        self._echo(state_line(name, status))

    def download(self, name: str, download: state_pb2.DownloadStatus, phase_changed: bool) -> None:
        if phase_changed:
            self._echo(download_line(name, download))

    def finish(self) -> None:
        pass


class BarDisplay:
    """A progress bar redrawn in place on a terminal; state lines are printed above it."""

    def __init__(self, stream: IO[str], columns: Callable[[], int] | None = None) -> None:
        self._stream = stream
        self._columns = columns or (lambda: shutil.get_terminal_size().columns)
        self._bar_shown = False

    def _clear(self) -> None:
        if self._bar_shown:
            self._stream.write("\r\x1b[K")
            self._bar_shown = False

    def _line(self, text: str) -> None:
        self._clear()
        self._stream.write(text + "\n")
        self._stream.flush()

    def state(self, name: str, status: state_pb2.ResourceStatus) -> None:
        self._line(state_line(name, status))

    def download(self, name: str, download: state_pb2.DownloadStatus, phase_changed: bool) -> None:
        if download.phase == "downloading":
            self._clear()
            self._stream.write(progress_bar(name, download, max(20, self._columns() - 1)))
            self._stream.flush()
            self._bar_shown = True
        elif phase_changed:
            self._line(download_line(name, download))

    def finish(self) -> None:
        self._clear()
        self._stream.flush()


def follow_load(
    events: Iterable[control_pb2.FollowModelEvent], name: str, generation: int, display: Display
) -> tuple[Outcome, state_pb2.ResourceStatus]:
    """Read the FollowModel stream until the load of ``generation`` is over.

    Returns the outcome (READY or FAILED) with the deciding status; when the stream ends first
    (its deadline), returns WAITING with the last status seen. Raises ModelDeleted.
    """
    last = state_pb2.ResourceStatus(kind="Model", name=name)
    shown_state = ""
    phases: dict[int, str] = {}

    def on_download(download: state_pb2.DownloadStatus) -> None:
        seen = phases.get(download.version)
        if seen is not None and seen != "downloading" and download.phase == "downloading":
            return  # a late report (the status service's copy lags the live relay): never go back
        phases[download.version] = download.phase
        display.download(name, download, seen != download.phase)

    try:
        for event in events:
            which = event.WhichOneof("event")
            if which == "deleted":
                raise ModelDeleted(f"model {name} was deleted while it was loading")
            if which == "download":
                on_download(event.download)
                continue
            if which != "status":
                continue
            last = event.status
            # The status service's (throttled) copy of a download covers a report sent before
            # the stream started; only phase changes are taken from it.
            for download in last.downloads:
                if phases.get(download.version) != download.phase:
                    on_download(download)
            outcome = load_outcome(last, generation)
            stale = last.observed_generation < generation and last.state in (MODEL_AVAILABLE, MODEL_FAILED)
            if last.state != shown_state and not stale:
                shown_state = last.state
                display.state(name, last)
            if outcome is not Outcome.WAITING:
                return outcome, last
        return Outcome.WAITING, last
    finally:
        display.finish()
