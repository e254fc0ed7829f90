"""Supervised child processes.

Design: every modelplane service runs as its own OS process (as it would in its own pod), so a
crash in one cannot take the others down and `modelplane up` exercises the real wire protocol.
Children start in their own session so a Ctrl-C in the terminal reaches only the supervisor,
which then stops them in order (agents before the scheduler, NATS last). On Linux each child
also gets PDEATHSIG so it dies with a supervisor that was killed outright. A child that exits
while it should be running is logged at error level and restarted (at once after a healthy run,
with exponential backoff while it keeps crashing): never restarted silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence

import structlog

from modelplane.libs.process import die_with_parent
from modelplane.libs.tasks import TaskSupervisor

log = structlog.get_logger(__name__)

# Seconds a child must have run for its crash to be restarted at once rather than after a backoff.
HEALTHY_RUN = 10.0


def modelplane_argv(*args: str) -> list[str]:
    """argv that runs the modelplane CLI with the same interpreter as this process."""
    return [sys.executable, "-m", "modelplane", *args]


class Child:
    """One supervised process: started, watched, restarted loudly, stopped by its own pid."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        supervisor: TaskSupervisor,
        *,
        max_backoff: float = 30.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self.name = name
        self._argv = list(argv)
        self._env = dict(env)
        self._supervisor = supervisor
        self._max_backoff = max_backoff
        self._stop_timeout = stop_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._watch: asyncio.Task[None] | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self) -> None:
        await self._spawn()
        self._watch = self._supervisor.spawn(f"watch:{self.name}", self._watch_loop())

    async def _spawn(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self._argv,
            env={**os.environ, **self._env},
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log.info("child_started", child=self.name, pid=self._proc.pid)

    async def _watch_loop(self) -> None:
        backoff = 1.0
        while not self._stopping:
            proc = self._proc
            assert proc is not None
            started = asyncio.get_running_loop().time()
            code = await proc.wait()
            if self._stopping:
                return
            ran_for = asyncio.get_running_loop().time() - started
            if ran_for > HEALTHY_RUN:
                # One crash after a healthy run is not a crash loop: restart at once, since a
                # restarted agent adopts its model server and must re-register before the
                # scheduler's heartbeat timeout. Quick crashes back off exponentially.
                delay, backoff = 0.0, 1.0
            else:
                delay, backoff = backoff, min(backoff * 2, self._max_backoff)
            log.error(
                "child_crashed",
                child=self.name,
                pid=proc.pid,
                exit_code=code,
                ran_for_s=round(ran_for, 1),
                restart_in_s=delay,
            )
            await asyncio.sleep(delay)
            if self._stopping:
                return
            self.restarts += 1
            await self._spawn()

    async def stop(self) -> None:
        """SIGTERM, wait for a clean exit, SIGKILL after the timeout (idempotent)."""
        self._stopping = True
        proc = self._proc
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self._stop_timeout)
        except TimeoutError:
            log.error("child_kill", child=self.name, pid=proc.pid, after_s=self._stop_timeout)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        log.info("child_stopped", child=self.name, pid=proc.pid, exit_code=proc.returncode)
