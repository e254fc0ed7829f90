"""NATS edge of the status service: the storage service's download progress in.

One wildcard subscription on ``subjects.ALL_STORAGE_PROGRESS``; each FetchProgress is decoded
and handed to the deriver, which keeps it with the model's status and throttles the writes.
A message that does not decode is logged and dropped (progress is best effort).
"""

from __future__ import annotations

import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from modelplane.libs import subjects
from modelplane.libs.nats_messages import decoded
from modelplane.proto import agent_pb2
from modelplane.services.status import converters
from modelplane.services.status.handler import StatusDeriver

log = structlog.get_logger(__name__)


class ProgressSubscriber:
    """Feeds FetchProgress events to ``StatusDeriver.download_progressed``."""

    def __init__(self, nc: NATS, deriver: StatusDeriver) -> None:
        self._nc = nc
        self._deriver = deriver
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(subjects.ALL_STORAGE_PROGRESS, cb=self._on_progress)
        # The subscription reaches the server asynchronously; flush so start() means "listening".
        await self._nc.flush()

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection may already be closed
                log.debug("progress_unsubscribe_failed", error=repr(exc))

    async def _on_progress(self, msg: Msg) -> None:
        event = decoded(agent_pb2.FetchProgress, msg)
        if event is None:
            return
        model, download = converters.download_from_pb(event)
        if model:
            self._deriver.download_progressed(model, download)
