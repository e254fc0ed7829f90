"""Helpers for the child processes modelplane starts (services under `up`, model-server runtimes).

Besides ``die_with_parent``, this holds the *process record*: a small JSON file a supervisor
writes beside a process it means to outlive it (the placement agent's model server), naming the
pid, the kernel's start time of that pid and a fingerprint of what was launched. A pid alone is
not an identity (the kernel reuses pids); pid + start time is, so a record never makes us adopt or
kill a stranger that happens to hold a recycled pid.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1
# /proc/<pid>/stat: field 3 is the state, field 22 the start time (clock ticks after boot).
_STATE_FIELD = 3
_START_TIME_FIELD = 22


def die_with_parent() -> None:
    """``preexec_fn`` for a child: have the kernel send it SIGTERM when its parent dies.

    Children are started in their own session (so a terminal's Ctrl-C reaches only their
    supervisor, which stops them in order); without this, a supervisor killed outright would
    leave them orphaned. Linux only; elsewhere a no-op.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass


def start_time(pid: int) -> int | None:
    """The start time of a live process (clock ticks after boot); None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')': split after the last.
    rest = stat[stat.rfind(")") + 2 :].split()
    try:
        state = rest[_STATE_FIELD - 3]
        ticks = int(rest[_START_TIME_FIELD - 3])
    except (IndexError, ValueError):
        return None
    # A zombie has exited; nobody may have reaped it yet (an orphan under a non-reaping init).
    return None if state in ("Z", "X") else ticks


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        # rest[0] is field 3 (state), rest[2] field 5 (process group).
        if len(rest) > 2 and rest[0] not in ("Z", "X") and rest[2] == str(pgid):
            members.append(int(entry.name))
    return members


def is_same_process(pid: int, started: int) -> bool:
    """``pid`` is alive and is the very process that started at ``started``."""
    return pid > 0 and start_time(pid) == started


def kill_group_if_same(pid: int, started: int, sig: signal.Signals = signal.SIGKILL) -> bool:
    """Signal the process group led by ``pid`` if ``pid`` is still that process; True if sent."""
    if not is_same_process(pid, started):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
        return True
    return False


@dataclass(frozen=True)
class ProcessRecord:
    """What a supervisor remembers about a process it launched in its own group."""

    pid: int
    start_time: int
    fingerprint: str
    ports: dict[str, int] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)

    def alive(self) -> bool:
        return is_same_process(self.pid, self.start_time)


def read_record(path: Path) -> ProcessRecord | None:
    """The record at ``path``; None when absent or unreadable (then nothing can be trusted)."""
    try:
        data = json.loads(path.read_text())
        return ProcessRecord(
            pid=int(data["pid"]),
            start_time=int(data["start_time"]),
            fingerprint=str(data["fingerprint"]),
            ports={str(k): int(v) for k, v in dict(data.get("ports", {})).items()},
            endpoints={str(k): str(v) for k, v in dict(data.get("endpoints", {})).items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_record(path: Path, record: ProcessRecord) -> None:
    """Write atomically (temp file + rename): a reader never sees half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(asdict(record), indent=2))
    os.replace(temp, path)


def remove_record(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def sweep_records(paths: Iterable[Path]) -> list[int]:
    """SIGKILL the group of every recorded process still alive, drop the records; return the pids."""
    killed: list[int] = []
    for path in paths:
        record = read_record(path)
        if record is not None and kill_group_if_same(record.pid, record.start_time):
            killed.append(record.pid)
        remove_record(path)
    return killed
