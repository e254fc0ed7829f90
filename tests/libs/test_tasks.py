"""TaskSupervisor and KeyedWorkers: ownership, ordering per key, parallelism across keys."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from modelplane.libs.tasks import KeyedWorkers, TaskSupervisor


async def test_close_cancels_and_awaits_every_task() -> None:
    """close() leaves no task running, and spawning afterwards is refused."""
    sup = TaskSupervisor("t")
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = sup.spawn("forever", forever())
    await started.wait()
    await sup.close()
    assert task.cancelled()
    assert sup.running == 0

    async def late() -> None:
        return None

    with pytest.raises(RuntimeError):
        sup.spawn("late", late())
    await sup.close()  # idempotent


async def test_work_for_one_key_runs_in_order_and_other_keys_interleave() -> None:
    """Items of one key never overlap or reorder; another key is not blocked by them."""
    sup = TaskSupervisor("t")
    workers = KeyedWorkers(sup, "w")
    log: list[str] = []
    gate = asyncio.Event()
    done = asyncio.Event()

    def item(key: str, n: int, wait: bool = False) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            log.append(f"{key}{n}-start")
            if wait:
                await gate.wait()
            log.append(f"{key}{n}-end")
            if key == "a" and n == 2:
                done.set()

        return run

    workers.submit("a", item("a", 1, wait=True))
    workers.submit("a", item("a", 2))
    workers.submit("b", item("b", 1))
    for _ in range(10):
        await asyncio.sleep(0)
    assert "b1-end" in log
    assert "a2-start" not in log
    gate.set()
    await done.wait()
    assert log.index("a1-end") < log.index("a2-start")
    await sup.close()


async def test_a_failing_item_does_not_stop_the_key() -> None:
    """An exception in one item is logged and the next item of the key still runs."""
    sup = TaskSupervisor("t")
    workers = KeyedWorkers(sup, "w")
    ran = asyncio.Event()

    async def boom() -> None:
        raise ValueError("boom")

    async def after() -> None:
        ran.set()

    workers.submit("k", boom)
    workers.submit("k", after)
    await asyncio.wait_for(ran.wait(), 5)
    await sup.close()
