"""Follows the stack's state from outside, as any NATS client could: KV watches on the buckets a
model's way to ready replicas goes through, and the gateways' load and wake events, each
stamped on arrival into a ``Timeline``.

``wait_for`` polls nothing: it re-checks its condition each time an observation arrives.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from google.protobuf.message import Message
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from bench.autoscaler.timeline import Observation, Timeline
from modelplane.libs import subjects
from modelplane.libs.store import TypedBucket, connect, disconnect
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import events_pb2, resources_pb2, state_pb2

T = TypeVar("T")

# Event sources (KV sources are the bucket names).
WAKE = "wake"
LOAD = "load"

_BUCKETS: tuple[tuple[str, type[Message]], ...] = (
    (subjects.KV_MODELS, resources_pb2.Model),
    (subjects.KV_AUTOSCALER, state_pb2.ModelScaling),
    (subjects.KV_PLACEMENTS, state_pb2.ModelPlacement),
    (subjects.KV_ROUTES, state_pb2.ModelRoute),
    (subjects.KV_STATUS, state_pb2.ResourceStatus),
)
# Seconds to wait for every watch to deliver the buckets' current contents.
_CATCH_UP_TIMEOUT = 30.0


class Observer:
    """``async with Observer(nats_url) as seen``: ``seen.timeline`` fills as things happen."""

    def __init__(self, nats_url: str) -> None:
        self._url = nats_url
        self.timeline = Timeline()
        self._nc: NATS | None = None
        self._tasks = TaskSupervisor("bench-observer")
        self._changed = asyncio.Event()
        self._caught_up: dict[str, asyncio.Event] = {}

    async def __aenter__(self) -> Observer:
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _start(self) -> None:
        nc = await connect(self._url, name="bench-autoscaler")
        self._nc = nc
        js = nc.jetstream()
        for bucket, message_type in _BUCKETS:
            typed = await TypedBucket.open(js, bucket, message_type)
            self._caught_up[bucket] = asyncio.Event()
            self._tasks.spawn(f"watch:{bucket}", self._watch(bucket, typed))

        async def on_wake(msg: Msg) -> None:
            wake = events_pb2.ModelWake.FromString(msg.data)
            self._add(WAKE, wake.model, wake)

        async def on_load(msg: Msg) -> None:
            load = events_pb2.ModelLoad.FromString(msg.data)
            self._add(LOAD, load.model, load)

        await nc.subscribe(subjects.ALL_GATEWAY_WAKE, cb=on_wake)
        await nc.subscribe(subjects.ALL_GATEWAY_LOAD, cb=on_load)
        await nc.flush()
        await asyncio.wait_for(
            asyncio.gather(*(event.wait() for event in self._caught_up.values())), _CATCH_UP_TIMEOUT
        )

    async def _watch(self, bucket: str, typed: TypedBucket[Message]) -> None:
        async for change in typed.watch():
            if change is None:
                self._caught_up[bucket].set()
                continue
            self._add(bucket, change.key, change.value)

    def _add(self, source: str, key: str, value: object) -> None:
        self.timeline.add(Observation(time.perf_counter(), source, key, value))
        self._changed.set()

    async def wait_for(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """``check()``'s first non-None answer, re-checked at every observation."""
        deadline = time.monotonic() + timeout
        while True:
            self._changed.clear()  # before checking: nothing can arrive in between (no await)
            found = check()
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue

    async def close(self) -> None:
        await self._tasks.close()
        await disconnect(self._nc)
        self._nc = None
