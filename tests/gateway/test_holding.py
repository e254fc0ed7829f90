"""Held requests: a known model without a ready replica waits (bounded in time and number) and is
released as soon as its route gets a replica; unknown models are never held."""

from __future__ import annotations

import asyncio

import pytest

from modelplane.libs.dataplane.holding import RequestHold
from modelplane.libs.dataplane.routing import RouteTable, default_version
from modelplane.libs.errors import NotFoundError, RetryableError
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion

EMPTY = Route("iris", (RouteVersion(1, "iris_1", ()),))
READY = Route(
    "iris", (RouteVersion(1, "iris_1", (RouteEndpoint("mlserver", 0, "127.0.0.1:1", "127.0.0.1:2"),)),)
)


def endpoints(table: RouteTable, model: str) -> tuple[RouteEndpoint, ...]:
    """What the handler's ready_target does: NotFoundError if unknown, RetryableError if no replica."""
    route = table.get(model)
    if route is None:
        raise NotFoundError(f"model {model} not found")
    version = default_version(route)
    if version is None or not version.endpoints:
        raise RetryableError(f"model {model} has no ready replica", delay=2.0)
    return version.endpoints


async def test_a_held_request_is_released_when_a_replica_appears() -> None:
    """The request waits, then gets the replica the moment the route has one."""
    table = RouteTable()
    table.put(EMPTY)
    hold = RequestHold(table, hold_seconds=30, max_held=10)
    waiting = asyncio.create_task(hold.until_ready("iris", lambda: endpoints(table, "iris")))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    assert hold.held("iris") == 1
    table.put(READY)
    assert await asyncio.wait_for(waiting, 5) == READY.versions[0].endpoints
    assert hold.held("iris") == 0


async def test_a_request_held_in_vain_gets_503_with_retry_after() -> None:
    """After the hold time, the last 'no ready replica' error comes back with its delay."""
    table = RouteTable()
    table.put(EMPTY)
    hold = RequestHold(table, hold_seconds=0.2, max_held=10)
    with pytest.raises(RetryableError) as caught:
        await hold.until_ready("iris", lambda: endpoints(table, "iris"))
    assert "no ready replica" in str(caught.value)
    assert "waited 0.2s" in str(caught.value)
    assert caught.value.delay == 2.0
    assert hold.held("iris") == 0


async def test_unrelated_route_changes_do_not_release_and_unknown_models_fail_at_once() -> None:
    """Another model's change leaves the request waiting; an unknown model is a 404 without waiting."""
    table = RouteTable()
    table.put(EMPTY)
    hold = RequestHold(table, hold_seconds=30, max_held=10)
    with pytest.raises(NotFoundError):
        await hold.until_ready("nope", lambda: endpoints(table, "nope"))
    waiting = asyncio.create_task(hold.until_ready("iris", lambda: endpoints(table, "iris")))
    await asyncio.sleep(0.05)
    table.put(Route("other", ()))
    table.put(EMPTY)  # iris changed but still has no replica: keep waiting
    await asyncio.sleep(0.05)
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert hold.held("iris") == 0


async def test_at_most_max_held_requests_wait_per_model() -> None:
    """Beyond the bound, a request is refused at once instead of queueing."""
    table = RouteTable()
    table.put(EMPTY)
    hold = RequestHold(table, hold_seconds=30, max_held=2)
    held = [asyncio.create_task(hold.until_ready("iris", lambda: endpoints(table, "iris"))) for _ in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(RetryableError, match="2 requests already wait"):
        await hold.until_ready("iris", lambda: endpoints(table, "iris"))
    table.put(READY)
    assert len(await asyncio.gather(*held)) == 2


async def test_a_model_deleted_while_held_ends_the_wait_with_404() -> None:
    """Deleting the model wakes its held requests, which then get not-found."""
    table = RouteTable()
    table.put(EMPTY)
    hold = RequestHold(table, hold_seconds=30, max_held=10)
    waiting = asyncio.create_task(hold.until_ready("iris", lambda: endpoints(table, "iris")))
    await asyncio.sleep(0.05)
    table.delete("iris")
    with pytest.raises(NotFoundError):
        await asyncio.wait_for(waiting, 5)


async def test_the_first_held_request_of_a_model_wakes_it_once() -> None:
    """The wake hook runs when a model's first request is held, not for the ones that join it."""
    table = RouteTable()
    table.put(EMPTY)
    woken: list[str] = []
    hold = RequestHold(table, hold_seconds=30, max_held=10, on_first_hold=woken.append)
    waiting = [
        asyncio.create_task(hold.until_ready("iris", lambda: endpoints(table, "iris")), name=f"held-{i}")
        for i in range(3)
    ]
    await asyncio.sleep(0.05)
    assert hold.held("iris") == 3
    table.put(READY)
    await asyncio.gather(*waiting)
    assert woken == ["iris"]


async def test_a_replica_ready_between_the_look_and_the_wait_still_releases() -> None:
    """The route changes right after the first look fails, before the request starts waiting:
    the request is released at once instead of waiting out its hold time."""
    table = RouteTable()
    table.put(EMPTY)
    hold = RequestHold(table, hold_seconds=2, max_held=10)
    looks = 0

    def attempt() -> tuple[RouteEndpoint, ...]:
        nonlocal looks
        looks += 1
        if looks == 1:  # the replica becomes ready on the next turn of the loop
            asyncio.get_running_loop().call_soon(table.put, READY)
        return endpoints(table, "iris")

    assert await hold.until_ready("iris", attempt) == READY.versions[0].endpoints
