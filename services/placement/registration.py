"""The replica's entry in KV_REPLICAS: written at start, kept current, deleted on close.

Design: writes are serialized by a lock and each takes the newest loaded-models snapshot when its
turn comes, so concurrent model workers cannot leave an older set in KV. Once deregistered, late
writes from in-flight work are dropped, so a closing agent never re-creates its key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from modelplane.libs import subjects
from modelplane.libs.store import TypedBucket
from modelplane.proto import state_pb2

log = structlog.get_logger(__name__)


class ReplicaRegistration:
    def __init__(self, bucket: TypedBucket[state_pb2.ReplicaInfo], info: state_pb2.ReplicaInfo) -> None:
        self._bucket = bucket
        self._info = info
        self.key = subjects.replica_key(info.server, info.index)
        self._lock = asyncio.Lock()
        self._registered = False
        self._gone = False

    @property
    def info(self) -> state_pb2.ReplicaInfo:
        return self._info

    async def register(self) -> None:
        async with self._lock:
            await self._bucket.put(self.key, self._info)
            self._registered = True
        log.info("replica_registered", key=self.key, incarnation=self._info.incarnation)

    async def loaded_models_changed(self, snapshot: Callable[[], list[str]]) -> None:
        async with self._lock:
            if self._gone or not self._registered:
                return
            del self._info.loaded_models[:]
            self._info.loaded_models.extend(snapshot())
            await self._bucket.put(self.key, self._info)

    async def set_draining(self) -> None:
        """Tell the scheduler to move this replica's models elsewhere (the key stays: still serving)."""
        async with self._lock:
            if self._gone or not self._registered or self._info.draining:
                return
            self._info.draining = True
            await self._bucket.put(self.key, self._info)
        log.info("replica_draining", key=self.key)

    async def deregister(self) -> None:
        async with self._lock:
            if self._gone:
                return
            self._gone = True
            if self._registered:
                await self._bucket.delete(self.key)
                log.info("replica_deregistered", key=self.key)
