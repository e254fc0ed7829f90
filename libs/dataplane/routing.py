"""The gateway's in-memory route table: model name -> versions -> replica endpoints.

Design: the scheduler writes one ``ModelRoute`` per model into KV; the route watcher feeds every
change into this table, so a request is routed without any I/O. A (re)started watch replays all
current keys; ``begin_sync``/``end_sync`` bracket that replay so keys deleted while the watch was
down disappear too. The records are ``modelplane.libs.routes`` types (shared with the
scheduler); choosing a version of a route is the gateway's and lives here. Everything here is
plain data and synchronous: it runs on the event loop thread only, so no locks.
"""

from __future__ import annotations

import asyncio

from modelplane.libs.routes import Route, RouteVersion


def default_version(route: Route) -> RouteVersion | None:
    """The version that serves requests without a version: the first one, if any."""
    return route.versions[0] if route.versions else None


def find_version(route: Route, number: int) -> RouteVersion | None:
    """The version numbered ``number``, or None."""
    for candidate in route.versions:
        if candidate.version == number:
            return candidate
    return None


class RouteTable:
    """Current routes by model name, kept up to date by the route watcher."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._seen: set[str] | None = None
        # True once one full replay of the KV bucket has been applied.
        self.synced = False
        # Model -> futures of requests waiting for its route to change (held requests).
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    def get(self, model: str) -> Route | None:
        return self._routes.get(model)

    def __len__(self) -> int:
        return len(self._routes)

    def models(self) -> list[str]:
        return sorted(self._routes)

    def begin_sync(self) -> None:
        """A watch (re)starts: remember which keys its replay mentions."""
        self._seen = set()

    def put(self, route: Route) -> None:
        self._routes[route.model] = route
        if self._seen is not None:
            self._seen.add(route.model)
        self._wake(route.model)

    def delete(self, model: str) -> None:
        self._routes.pop(model, None)
        if self._seen is not None:
            self._seen.add(model)
        self._wake(model)

    def next_change(self, model: str) -> asyncio.Future[None]:
        """A future done at the next change of ``model``'s route, registered now.

        Registered synchronously, so a caller that registers *then* checks the route cannot miss
        a change made in between; it must ``drop_waiter`` the future when it stops waiting.
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(model, []).append(waiter)
        return waiter

    def drop_waiter(self, model: str, waiter: asyncio.Future[None]) -> None:
        """Forget a waiter of ``next_change`` (woken ones were dropped already)."""
        current = self._waiters.get(model)
        if current is not None and waiter in current:
            current.remove(waiter)
            if not current:
                del self._waiters[model]

    def _wake(self, model: str) -> None:
        for waiter in self._waiters.pop(model, ()):
            if not waiter.done():
                waiter.set_result(None)

    def end_sync(self) -> None:
        """The replay is complete: drop models it did not mention (deleted meanwhile)."""
        if self._seen is not None:
            for model in set(self._routes) - self._seen:
                del self._routes[model]
                self._wake(model)
        self._seen = None
        self.synced = True
