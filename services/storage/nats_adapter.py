"""Serves FetchRequest on STORAGE_FETCH (request/reply, queue group): decode, call, encode."""

from __future__ import annotations

import structlog
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from modelplane.libs import subjects
from modelplane.libs.errors import InvalidError, ModelplaneError
from modelplane.proto import agent_pb2
from modelplane.services.storage import converters
from modelplane.services.storage.handler import StorageHandler

log = structlog.get_logger(__name__)


class StorageNatsAdapter:
    """One queue subscription; several storage processes share the load."""

    def __init__(self, nc: NATS, handler: StorageHandler) -> None:
        self._nc = nc
        self._handler = handler
        self._sub: Subscription | None = None

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

    async def _on_fetch(self, msg: Msg) -> None:
        reply = await self._handle(msg.data)
        if msg.reply:
            await msg.respond(reply.SerializeToString())

    async def _handle(self, data: bytes) -> agent_pb2.FetchReply:
        try:
            request = agent_pb2.FetchRequest()
            try:
                request.ParseFromString(data)
            except DecodeError as exc:
                raise InvalidError("the fetch request is not a FetchRequest message") from exc
            query = converters.query_from_pb(request)
            path = await self._handler.fetch(query.uri, query.artifact_version, query.secret_name)
            return converters.path_to_pb(path)
        except ModelplaneError as exc:
            log.info("fetch_failed", error=str(exc), kind=converters.error_kind(exc))
            return converters.error_to_pb(exc)
        except Exception as exc:
            log.exception("fetch_crashed")
            return converters.error_to_pb(exc)
