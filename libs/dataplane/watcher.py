"""Keeps an in-memory table in step with a KV bucket (routes, experiments).

Design: one long-lived task follows a KV watch: the replay of current keys is bracketed by
``begin_sync``/``end_sync`` on the table, then every change is applied as it arrives. If the
watch breaks (NATS trouble), the loop starts a fresh watch after a short pause; the fresh replay
re-syncs the table, dropping entries deleted in between, while requests keep using the last
known entries. Records are taken as they are: their writers (scheduler, api) validated them;
one that still cannot be converted is logged with its key, counted and skipped (a restarted
watch would only meet it again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import structlog
from google.protobuf.message import Message

from modelplane.libs.dataplane.routing import RouteTable
from modelplane.libs.routes import Route, route_from_pb
from modelplane.libs.store import UNDECODABLE_VALUES, TypedBucket
from modelplane.proto import state_pb2

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=Message)
V = TypeVar("V")
V_contra = TypeVar("V_contra", contravariant=True)


class SyncedTable(Protocol[V_contra]):
    """A table a ``BucketWatcher`` keeps current."""

    def begin_sync(self) -> None: ...

    def put(self, value: V_contra, /) -> None: ...

    def delete(self, key: str, /) -> None: ...

    def end_sync(self) -> None: ...

    def __len__(self) -> int: ...


class BucketWatcher(Generic[M, V]):
    """Applies every change of one bucket to a table, forever (run it as a supervised task)."""

    def __init__(
        self,
        bucket: TypedBucket[M],
        table: SyncedTable[V],
        decode: Callable[[str, M], V],
        what: str,
        restart_delay: float = 1.0,
    ) -> None:
        self._bucket = bucket
        self._table = table
        self._decode = decode
        # What the table holds ("route", "experiment"), for the log events.
        self._what = what
        self._restart_delay = restart_delay

    async def run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "table_watch_failed", table=self._what, error=repr(exc), restart_in=self._restart_delay
                )
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
                    log.info("table_synced", table=self._what, entries=len(self._table))
                elif change.value is None:
                    self._table.delete(change.key)
                    log.info("table_entry_deleted", table=self._what, key=change.key)
                else:
                    try:
                        entry = self._decode(change.key, change.value)
                    except Exception as exc:
                        # Skipped, not fatal: a restarted watch would replay it and fail again,
                        # and the table would never be in sync.
                        log.warning(
                            "table_entry_unusable", table=self._what, key=change.key, error=type(exc).__name__
                        )
                        UNDECODABLE_VALUES.count(self._bucket.name)
                        continue
                    self._table.put(entry)
                    log.debug("table_entry_updated", table=self._what, key=change.key)
        finally:
            await stream.aclose()


class RouteWatcher(BucketWatcher[state_pb2.ModelRoute, Route]):
    """Keeps the route table in step with the ``KV_ROUTES`` bucket."""

    def __init__(
        self, bucket: TypedBucket[state_pb2.ModelRoute], table: RouteTable, restart_delay: float = 1.0
    ) -> None:
        super().__init__(bucket, table, route_from_pb, "route", restart_delay)
