"""Requests held while a known model has no ready replica (the scale-from-zero hold).

Why: a model scaled to zero, still loading, or between two replicas is known to the gateway
(it has a route) but has nowhere to send a request. Failing at once would turn every scale-up
into errors; KubeAI and KServe hold the request until a replica is ready. Here a request waits on
the route table (no polling: the route watcher wakes it when the model's route changes) for at
most ``hold_seconds``, and at most ``max_held`` requests per model wait at once, so a model that
never comes up cannot pile up unbounded work. Unknown models are never held (404 at once); a
request that waited in vain gets the usual 503 / UNAVAILABLE with Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar

import structlog

from modelplane.libs.dataplane.routing import RouteTable
from modelplane.libs.errors import RetryableError

log = structlog.get_logger(__name__)

T = TypeVar("T")


class RequestHold:
    """Waits, bounded in time and number, until a model's target has a ready replica."""

    def __init__(
        self,
        routes: RouteTable,
        *,
        hold_seconds: float,
        max_held: int,
        on_first_hold: Callable[[str], None] | None = None,
    ) -> None:
        self._routes = routes
        self._hold_seconds = hold_seconds
        self._max_held = max_held
        self._held: dict[str, int] = {}
        # Called when a model goes from no held request to one (the gateway wakes the autoscaler:
        # a model at zero replicas gets one at once rather than at the next sizing tick).
        self._on_first_hold = on_first_hold

    def held(self, model: str) -> int:
        """Requests for ``model`` waiting now."""
        return self._held.get(model, 0)

    def all_held(self) -> dict[str, int]:
        """Model -> requests waiting now (models with none are absent)."""
        return dict(self._held)

    async def until_ready(self, model: str, attempt: Callable[[], T]) -> T:
        """``attempt()``'s result once it stops raising RetryableError (no ready replica yet).

        Any other error (an unknown model: NotFoundError) goes to the caller at once. After
        ``hold_seconds``, or when ``max_held`` requests already wait for the model, the last
        RetryableError goes to the caller (503 with Retry-After).
        """
        try:
            return attempt()
        except RetryableError as first:
            if self._hold_seconds <= 0:
                raise
            if self.held(model) >= self._max_held:
                raise RetryableError(
                    f"model {model} has no ready replica and {self._max_held} requests already wait for one",
                    delay=first.delay,
                ) from first
            last = first
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._hold_seconds
        self._held[model] = self.held(model) + 1
        log.debug("request_held", model=model, held=self._held[model])
        if self._held[model] == 1 and self._on_first_hold is not None:
            self._on_first_hold(model)
        try:
            while True:
                # Register for the next change before looking again: a replica that becomes
                # ready between the look and the wait still wakes this request.
                waiter = self._routes.next_change(model)
                try:
                    try:
                        return attempt()
                    except RetryableError as exc:
                        last = exc
                    left = deadline - loop.time()
                    if left <= 0:
                        raise RetryableError(
                            f"{last} (waited {self._hold_seconds:g}s for a ready replica)", delay=last.delay
                        ) from last
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(left):
                            await waiter
                finally:
                    self._routes.drop_waiter(model, waiter)
        finally:
            remaining = self._held[model] - 1
            if remaining:
                self._held[model] = remaining
            else:
                del self._held[model]
