"""Owned background tasks.

Design: no service calls ``asyncio.create_task`` directly. A ``TaskSupervisor`` creates every
long-lived task with a name, logs a task that dies with an exception (loudly: a dead loop is a
broken service), and on ``close()`` cancels and awaits all of them. ``KeyedWorkers`` runs the
work items of one key (e.g. one model) strictly in order on one task, while different keys run
in parallel; an idle key's task ends, so memory follows the number of busy keys.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class TaskSupervisor:
    """Creates, owns and cancels named background tasks."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self._owner}: cannot start {name!r} after close()")
        task = asyncio.create_task(coro, name=f"{self._owner}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._on_done)
        return task

    def _on_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("task_failed", task=task.get_name(), error=repr(exc), exc_info=exc)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def close(self, timeout: float = 5.0) -> None:
        """Cancel every task and wait for them (idempotent)."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                log.error("task_ignored_cancel", task=task.get_name())


class KeyedWorkers:
    """Runs callables for the same key in submission order, different keys concurrently."""

    def __init__(self, supervisor: TaskSupervisor, name: str) -> None:
        self._supervisor = supervisor
        self._name = name
        self._queues: dict[str, asyncio.Queue[Callable[[], Awaitable[None]]]] = {}

    def submit(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = asyncio.Queue()
            self._queues[key] = queue
            self._supervisor.spawn(f"{self._name}[{key}]", self._drain(key, queue))
        queue.put_nowait(work)

    async def _drain(self, key: str, queue: asyncio.Queue[Callable[[], Awaitable[None]]]) -> None:
        try:
            while not queue.empty():
                work = queue.get_nowait()
                try:
                    await work()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("keyed_work_failed", worker=self._name, key=key)
                # Let other keys' tasks run between items of a busy key.
                await asyncio.sleep(0)
        finally:
            self._queues.pop(key, None)

    def pending(self, key: str) -> int:
        queue = self._queues.get(key)
        return queue.qsize() if queue else 0


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel one task and wait until it has really stopped."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
