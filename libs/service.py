"""Running one service process: signals only set an event, then the app shuts down in order.

Each service's composition root (``services/<name>/app.py``) provides ``create() -> Service``;
``modelplane run <name>`` calls ``run(create())``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Protocol

import structlog

from modelplane.libs.errors import PermanentError

log = structlog.get_logger(__name__)


class Service(Protocol):
    """What a composition root exposes to the process runner."""

    name: str
    # Seconds close() may take before the runner gives up on it.
    shutdown_timeout: float

    async def start(self) -> None:
        """Connect, bind ports and start background work; return once serving."""

    async def close(self) -> None:
        """Drain and stop everything started by ``start`` (idempotent)."""


async def _failure_of(service: Service) -> str:
    """The reason the service gives up by itself; a service without ``wait_failed`` never does.

    Optional: ``async def wait_failed(self) -> str`` returns (with a reason) when the service
    cannot go on after a successful start (e.g. the agent's model server died).
    """
    wait_failed = getattr(service, "wait_failed", None)
    if wait_failed is None:
        await asyncio.Event().wait()  # never set: such a service only stops when told
        return ""
    reason: str = await wait_failed()
    return reason


async def serve_until_stopped(service: Service, stop: asyncio.Event, shutdown_timeout: float) -> None:
    """Start ``service``, wait for ``stop``, then close it within ``shutdown_timeout`` seconds.

    A stop that arrives while ``start()`` is still running (e.g. waiting for NATS) cancels it.
    A service that fails by itself (see ``_failure_of``) is closed the same way, then
    PermanentError is raised so the process exits non-zero.
    """
    starting = asyncio.ensure_future(service.start())
    stopping = asyncio.ensure_future(stop.wait())
    failing: asyncio.Future[str] | None = None
    failure = ""
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a failed start raises here, after which we still close
            log.info("service_started", name=service.name)
            failing = asyncio.ensure_future(_failure_of(service))
            await asyncio.wait({stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
            if failing.done() and not failing.cancelled() and failing.exception() is None:
                failure = failing.result()
                log.error("service_failed", name=service.name, reason=failure)
        else:
            log.info("service_stopped_while_starting", name=service.name)
        log.info("service_stopping", name=service.name)
    finally:
        tasks = [t for t in (starting, stopping, failing) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(service.close(), timeout=shutdown_timeout)
        except TimeoutError:
            log.error("service_close_timed_out", name=service.name, timeout=shutdown_timeout)
    log.info("service_stopped", name=service.name)
    if failure:
        raise PermanentError(f"{service.name} failed: {failure}")


def run(
    service: Service,
    shutdown_timeout: float = 10.0,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> None:
    """Run ``service`` in a fresh event loop until SIGINT or SIGTERM.

    ``loop_factory`` picks the loop implementation (e.g. uvloop for the gateway's data plane).
    """

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_until_stopped(service, stop, shutdown_timeout)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
