"""Following several KV buckets and waiting until each has replayed its current keys.

Design: a service that reacts to KV state (the scheduler, the status service) must not act on a
half-read cluster. ``watch_buckets`` opens one ``TypedBucket`` per ``BucketWatch``, runs one
supervised task per bucket that hands every change to the watch's callback (``None`` for a
deleted key), and returns once every bucket has passed its end-of-replay marker. Callbacks are
synchronous and must not block; one that raises is logged and the watch goes on, so one bad
value cannot stop a service from seeing later changes. The tasks keep running after the call
returns and stop when the supervisor is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from google.protobuf.message import Message
from nats.js import JetStreamContext

from modelplane.libs.errors import RetryableError
from modelplane.libs.store import TypedBucket
from modelplane.libs.tasks import TaskSupervisor

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class BucketWatch(Generic[M]):
    """One bucket to follow: its name, the message type it holds and who gets each change."""

    bucket: str
    message_type: type[M]
    # Called with the key and the new value, or None when the key was deleted.
    callback: Callable[[str, M | None], None]


async def watch_buckets(
    js: JetStreamContext,
    supervisor: TaskSupervisor,
    watches: Sequence[BucketWatch[Any]],
    timeout: float,
    what: str,
) -> None:
    """Follow every bucket in ``watches`` and return once all have replayed their current keys.

    Raises RetryableError ("<what> could not read the KV buckets in time") after ``timeout``
    seconds; the watch tasks belong to ``supervisor`` either way.
    """
    caught_up: list[asyncio.Event] = []
    for watch in watches:
        event = asyncio.Event()
        caught_up.append(event)
        await _spawn_watch(js, supervisor, watch, event)
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in caught_up)), timeout)
    except TimeoutError as exc:
        raise RetryableError(f"{what} could not read the KV buckets in time") from exc


async def _spawn_watch(
    js: JetStreamContext, supervisor: TaskSupervisor, watch: BucketWatch[M], caught_up: asyncio.Event
) -> None:
    bucket = await TypedBucket.open(js, watch.bucket, watch.message_type)
    supervisor.spawn(f"watch:{watch.bucket}", _follow(bucket, watch.callback, caught_up))


async def _follow(
    bucket: TypedBucket[M], callback: Callable[[str, M | None], None], caught_up: asyncio.Event
) -> None:
    async for change in bucket.watch():
        if change is None:
            caught_up.set()
            continue
        try:
            callback(change.key, change.value)
        except Exception:  # one bad value must not stop the watch
            log.exception("watch_change_failed", bucket=bucket.name, key=change.key)
