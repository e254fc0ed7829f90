"""The service runner: ordered start/stop, and a stop that arrives during start."""

from __future__ import annotations

import asyncio

import pytest

from modelplane.libs.errors import PermanentError
from modelplane.libs.service import serve_until_stopped


class Recorder:
    name = "recorder"
    shutdown_timeout = 5.0

    def __init__(self, start_blocks: bool = False, start_fails: bool = False) -> None:
        self.calls: list[str] = []
        self._start_blocks = start_blocks
        self._start_fails = start_fails
        self.entered = asyncio.Event()
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self.calls.append("start")
        self.entered.set()
        if self._start_fails:
            raise RuntimeError("cannot bind")
        if self._start_blocks:
            await asyncio.Event().wait()
        self.calls.append("started")
        self.ready.set()

    async def close(self) -> None:
        self.calls.append("close")


async def test_runs_until_stop_then_closes() -> None:
    """start, then close once the stop event is set."""
    service, stop = Recorder(), asyncio.Event()
    runner = asyncio.ensure_future(serve_until_stopped(service, stop, 1.0))
    await service.ready.wait()
    stop.set()
    await runner
    assert service.calls == ["start", "started", "close"]


async def test_stop_during_a_hanging_start_cancels_it_and_still_closes() -> None:
    """A SIGTERM while start() waits (e.g. for NATS) ends the process instead of hanging."""
    service, stop = Recorder(start_blocks=True), asyncio.Event()
    runner = asyncio.ensure_future(serve_until_stopped(service, stop, 1.0))
    await service.entered.wait()
    stop.set()
    await asyncio.wait_for(runner, 5)
    assert service.calls == ["start", "close"]


async def test_a_failed_start_raises_after_closing() -> None:
    """The start error propagates (the CLI prints it) and close() still runs."""
    service = Recorder(start_fails=True)
    with pytest.raises(RuntimeError, match="cannot bind"):
        await serve_until_stopped(service, asyncio.Event(), 1.0)
    assert service.calls == ["start", "close"]


class FailsByItself(Recorder):
    """A service that gives up after a successful start (like an agent whose runtime died)."""

    def __init__(self) -> None:
        super().__init__()
        self.failure = asyncio.Event()

    async def wait_failed(self) -> str:
        await self.failure.wait()
        return "runtime exited"


async def test_service_that_fails_by_itself_is_closed_and_raises() -> None:
    """A service whose wait_failed returns is closed, then the runner raises PermanentError."""
    service, stop = FailsByItself(), asyncio.Event()
    runner = asyncio.ensure_future(serve_until_stopped(service, stop, 1.0))
    await service.ready.wait()
    service.failure.set()
    with pytest.raises(PermanentError, match="recorder failed: runtime exited"):
        await runner
    assert service.calls == ["start", "started", "close"]
