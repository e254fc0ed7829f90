"""NATS edge of the api's download progress: the storage service's FetchProgress for one model.

A ``ProgressFeed`` for ``ControlHandler.follow_model``: one subscription on the model's progress
subject per followed model, read by the handler's pump task and removed when the follow ends. A message that does not
decode is logged and dropped (progress is best effort).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import structlog
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription

from modelplane.libs import subjects
from modelplane.libs.nats_messages import decoded
from modelplane.proto import agent_pb2, state_pb2
from modelplane.services.api import converters

log = structlog.get_logger(__name__)


class NatsProgressFeed:
    def __init__(self, nc: NATS) -> None:
        self._nc = nc

    @contextlib.asynccontextmanager
    async def follow(self, model: str) -> AsyncIterator[AsyncIterator[state_pb2.DownloadStatus]]:
        # No callback: messages wait on the subscription until the caller's task reads them, so
        # nothing of nats-py's outlives the block.
        sub = await self._nc.subscribe(subjects.storage_progress(model))
        try:
            # The subscription reaches the server asynchronously; flush so reports sent from now on arrive.
            await self._nc.flush()
            yield _reports(sub)
        finally:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection may already be closed
                log.debug("progress_unsubscribe_failed", error=repr(exc))


async def _reports(sub: Subscription) -> AsyncIterator[state_pb2.DownloadStatus]:
    async for msg in sub.messages:
        event = decoded(agent_pb2.FetchProgress, msg)
        if event is None:
            continue
        yield converters.download_from_progress(event)
