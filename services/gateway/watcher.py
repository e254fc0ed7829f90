"""Keeps the route table in step with the ``KV_ROUTES`` bucket.

Design: one long-lived task follows a KV watch: the replay of current keys is bracketed by
``begin_sync``/``end_sync`` on the table, then every change is applied as it arrives. If the
watch breaks (NATS trouble), the loop starts a fresh watch after a short pause; the fresh replay
re-syncs the table, dropping routes deleted in between, while requests keep using the last
known routes.
"""

from __future__ import annotations

import asyncio

import structlog

from modelplane.libs.routes import route_from_pb
from modelplane.libs.store import TypedBucket
from modelplane.proto import state_pb2
from modelplane.services.gateway.routing import RouteTable

log = structlog.get_logger(__name__)


class RouteWatcher:
    """Applies every ModelRoute change to a RouteTable, forever (run it as a supervised task)."""

    def __init__(
        self,
        bucket: TypedBucket[state_pb2.ModelRoute],
        table: RouteTable,
        restart_delay: float = 1.0,
    ) -> None:
        self._bucket = bucket
        self._table = table
        self._restart_delay = restart_delay

    async def run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("route_watch_failed", error=repr(exc), restart_in=self._restart_delay)
            # Pause before re-watching so a NATS outage does not become a busy loop.
            await asyncio.sleep(self._restart_delay)

    async def _follow(self) -> None:
        self._table.begin_sync()
        # watch() is an async generator; closing it stops the NATS consumer behind it.
        stream = self._bucket.watch()
        try:
            async for change in stream:
                if change is None:
                    self._table.end_sync()
                    log.info("routes_synced", models=len(self._table))
                elif change.value is None:
                    self._table.delete(change.key)
                    log.info("route_deleted", model=change.key)
                else:
                    route = route_from_pb(change.key, change.value)
                    self._table.put(route)
                    log.debug(
                        "route_updated",
                        model=route.model,
                        versions=[v.version for v in route.versions],
                        replicas=sum(len(v.endpoints) for v in route.versions),
                    )
        finally:
            await stream.aclose()
