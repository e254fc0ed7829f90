"""A model server process in its own process group, stopped with everything it spawned.

Design: MLServer's parallel workers (and Triton backends) are child processes of the server; the
server is started with ``start_new_session=True`` so one ``killpg`` reaches all of them. Output goes
to a log file in the replica's state dir; when the server dies at start we quote its last lines.

The server deliberately outlives an agent killed outright (no PDEATHSIG): the restarted agent
adopts it (``AdoptedProcess``, see ``server_process``) so its loaded models survive. ``up`` sweeps
the runtime records when it stops, so no server is leaked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

import structlog

from modelplane.libs.errors import DeadlineError, PermanentError
from modelplane.services.placement.runtimes.base import ReadyProbe, RuntimeExit

log = structlog.get_logger(__name__)

_PROBE_INTERVAL = 0.1  # seconds between readiness probes while a server starts


class ServerProcessHandle(Protocol):
    """A model server process (group) the agent drives, launched by it or adopted."""

    name: str

    @property
    def pid(self) -> int | None: ...

    async def wait_exit(self) -> int | None: ...

    def tail(self, lines: int = 20) -> str: ...

    async def stop(self, timeout: float = 10.0) -> None: ...


class ManagedProcess:
    """One child process (group) launched by the agent."""

    def __init__(
        self, name: str, argv: Sequence[str], *, cwd: Path, env: dict[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.cwd = cwd
        self.env = env
        self.log_path = log_path
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with _open_log(self.log_path) as out:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        log.info("runtime_process_started", runtime=self.name, pid=self._proc.pid, log=str(self.log_path))

    async def wait_ready(self, ready: ReadyProbe, timeout: float) -> None:
        """Probe until ready; PermanentError if the process exits first, DeadlineError on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            code = self.returncode()
            if code is not None:
                raise PermanentError(
                    f"{self.name} exited with code {code} while starting; last log lines:\n{self.tail()}"
                )
            if await ready():
                return
            if loop.time() >= deadline:
                raise DeadlineError(
                    f"{self.name} was not ready within {timeout:g}s; last log lines:\n{self.tail()}"
                )
            await asyncio.sleep(_PROBE_INTERVAL)

    async def wait_exit(self) -> int | None:
        """Wait until the process exits and return its code (None if it was never started)."""
        proc = self._proc
        if proc is None:
            return None
        return await proc.wait()

    def tail(self, lines: int = 20) -> str:
        return _tail(self.log_path, lines)

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group, wait, then SIGKILL whatever is left of it (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the child leads its own group
        if proc.returncode is None:
            _signal_group(pgid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                log.warning("runtime_process_kill", runtime=self.name, pid=pgid)
        # The leader may be gone while its workers linger: make sure the group is.
        _signal_group(pgid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()
        log.info("runtime_process_stopped", runtime=self.name, pid=pgid, code=proc.returncode)


# Exit code reported for an adopted server: it is not our child, so its status is not ours to read.
UNKNOWN_EXIT_CODE = -1


class AdoptedProcess:
    """A server process (group) a previous agent launched and this one took over.

    It is not our child: its exit is seen through a pidfd (readable once the process has exited,
    reaped or not) watched by the event loop, and its exit code is unknown.
    """

    def __init__(self, name: str, pid: int, pidfd: int, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._pid: int | None = pid
        self._pidfd = pidfd
        self._exited: asyncio.Future[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._pid

    def _exit_future(self) -> asyncio.Future[None]:
        if self._exited is None:
            loop = asyncio.get_running_loop()
            exited: asyncio.Future[None] = loop.create_future()
            self._exited = exited

            def on_readable() -> None:
                loop.remove_reader(self._pidfd)
                if not exited.done():
                    exited.set_result(None)

            loop.add_reader(self._pidfd, on_readable)
        return self._exited

    async def wait_exit(self) -> int | None:
        if self._pid is None:
            return None
        await asyncio.shield(self._exit_future())
        return UNKNOWN_EXIT_CODE

    def tail(self, lines: int = 20) -> str:
        return _tail(self.log_path, lines)

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group, wait for the leader, then SIGKILL what is left (idempotent)."""
        pgid, self._pid = self._pid, None
        if pgid is None:
            return
        exited = self._exit_future()
        if not exited.done():
            _signal_group(pgid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(exited), timeout)
            except TimeoutError:
                log.warning("runtime_process_kill", runtime=self.name, pid=pgid)
        _signal_group(pgid, signal.SIGKILL)
        await exited
        asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        log.info("runtime_process_stopped", runtime=self.name, pid=pgid, adopted=True)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _open_log(path: Path) -> BinaryIO:
    # A local append-only log file: opening it does not block the loop noticeably.
    return open(path, "ab")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def exit_of(process: ServerProcessHandle | None) -> RuntimeExit | None:
    """Wait for ``process`` to exit by itself; None when there is no process."""
    if process is None:
        return None
    code = await process.wait_exit()
    if code is None:
        return None
    return RuntimeExit(code, process.tail())
