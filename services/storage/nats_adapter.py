"""NATS edge of the storage service: FetchRequest on STORAGE_FETCH, FetchProgress publishing.

nats-py runs one subscription's callbacks one after another, and a fetch may download for
minutes; so each request is served on its own owned task (at most ``max_parallel`` at once),
and a second request for an artifact being downloaded joins that download in the handler.
The reply is sent inside the handler's lease, so the cache entry it names cannot be evicted
before the agent has the path.
"""

from __future__ import annotations

import asyncio

import structlog
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from modelplane.libs import subjects
from modelplane.libs.errors import InvalidError, ModelplaneError
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import agent_pb2
from modelplane.services.storage import converters
from modelplane.services.storage.handler import FetchProgress, StorageHandler

log = structlog.get_logger(__name__)


class NatsProgressPublisher:
    """``ProgressSink`` that publishes FetchProgress on the model's progress subject."""

    def __init__(self, nc: NATS) -> None:
        self._nc = nc

    async def publish(self, event: FetchProgress) -> None:
        payload = converters.progress_to_pb(event).SerializeToString()
        await self._nc.publish(subjects.storage_progress(event.model), payload)


class StorageNatsAdapter:
    """One queue subscription; several storage processes share the load."""

    def __init__(self, nc: NATS, handler: StorageHandler, max_parallel: int = 32) -> None:
        self._nc = nc
        self._handler = handler
        self._sub: Subscription | None = None
        self._tasks = TaskSupervisor("storage-nats")
        self._slots = asyncio.Semaphore(max_parallel)

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(
            subjects.STORAGE_FETCH, queue=subjects.STORAGE_QUEUE, cb=self._on_fetch
        )
        # The subscription reaches the server asynchronously; flush so start() means "serving".
        await self._nc.flush()

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection may already be closed
                log.debug("storage_unsubscribe_failed", error=repr(exc))
        await self._tasks.close()

    async def _on_fetch(self, msg: Msg) -> None:
        try:
            self._tasks.spawn("fetch", self._serve(msg))
        except RuntimeError:  # closing: the requester times out and asks another instance
            log.debug("fetch_refused_while_closing")

    async def _serve(self, msg: Msg) -> None:
        async with self._slots:
            try:
                query = _decode(msg.data)
                async with self._handler.lease(
                    query.uri, query.artifact_version, query.secret_name, query.progress_key
                ) as path:
                    await _respond(msg, converters.path_to_pb(path))
                return
            except ModelplaneError as exc:
                log.info("fetch_failed", error=str(exc), kind=converters.error_kind(exc))
                reply = converters.error_to_pb(exc)
            except Exception:
                log.exception("fetch_crashed")
                reply = converters.error_to_pb(RuntimeError())
            await _respond(msg, reply)


def _decode(data: bytes) -> converters.FetchQuery:
    request = agent_pb2.FetchRequest()
    try:
        request.ParseFromString(data)
    except DecodeError as exc:
        raise InvalidError("the fetch request is not a FetchRequest message") from exc
    return converters.query_from_pb(request)


async def _respond(msg: Msg, reply: agent_pb2.FetchReply) -> None:
    if msg.reply:
        await msg.respond(reply.SerializeToString())
