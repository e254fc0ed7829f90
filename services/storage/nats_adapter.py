"""NATS edge of the storage service: FetchRequest on STORAGE_FETCH, FetchProgress publishing.

nats-py runs one subscription's callbacks one after another, and a fetch may download for
minutes; so each request is served on its own owned task (at most ``max_parallel`` fetching at
once), and a second request for an artifact being downloaded joins that download in the handler.

The reply is sent inside the handler's lease, and the lease outlives the reply: the agent
copies the entry into its model repository after it got the path, and an eviction in between
would pull the files from under the copy. The reply carries a lease id; the lease ends when the
caller publishes FetchRelease with it on STORAGE_RELEASE, or after ``lease_timeout`` seconds
(a caller that died, or one that never releases), or when the service closes.
"""

from __future__ import annotations

import asyncio
import secrets

import structlog
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from modelplane.libs import subjects
from modelplane.libs.errors import InvalidError, ModelplaneError
from modelplane.libs.nats_messages import peer_only
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

    def __init__(
        self, nc: NATS, handler: StorageHandler, max_parallel: int = 32, lease_timeout: float = 300.0
    ) -> None:
        self._nc = nc
        self._handler = handler
        self._subs: list[Subscription] = []
        self._tasks = TaskSupervisor("storage-nats")
        self._slots = asyncio.Semaphore(max_parallel)
        self._lease_timeout = lease_timeout
        # Lease id -> set when its caller releases it.
        self._leases: dict[str, asyncio.Event] = {}

    async def start(self) -> None:
        self._subs = [
            await self._nc.subscribe(subjects.STORAGE_RELEASE, cb=peer_only(self._on_release)),
            await self._nc.subscribe(
                subjects.STORAGE_FETCH, queue=subjects.STORAGE_QUEUE, cb=peer_only(self._on_fetch)
            ),
        ]
        # The subscription reaches the server asynchronously; flush so start() means "serving".
        await self._nc.flush()

    async def close(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection may already be closed
                log.debug("storage_unsubscribe_failed", error=repr(exc))
        # Held leases end here too: their tasks are cancelled.
        await self._tasks.close()

    def leases(self) -> int:
        """How many replied paths are still protected (for tests and diagnostics)."""
        return len(self._leases)

    async def _on_fetch(self, msg: Msg) -> None:
        try:
            self._tasks.spawn("fetch", self._serve(msg))
        except RuntimeError:  # closing: the requester times out and asks another instance
            log.debug("fetch_refused_while_closing")

    async def _on_release(self, msg: Msg) -> None:
        released = self._leases.get(converters.release_from_pb(msg.data))
        if released is not None:
            released.set()

    async def _serve(self, msg: Msg) -> None:
        slot = _Slot(self._slots)
        async with slot:
            try:
                query = _decode(msg.data)
                async with self._handler.lease(
                    query.uri, query.artifact_version, query.secret_name, query.progress_key
                ) as path:
                    lease_id = secrets.token_hex(12)
                    released = self._leases[lease_id] = asyncio.Event()
                    try:
                        await _respond(msg, converters.path_to_pb(path, lease_id))
                        # Holding a lease is waiting, not fetching: free the slot for others.
                        slot.release()
                        await self._hold(lease_id, released)
                    finally:
                        del self._leases[lease_id]
                return
            except ModelplaneError as exc:
                log.info("fetch_failed", error=str(exc), kind=converters.error_kind(exc))
                reply = converters.error_to_pb(exc)
            except Exception:
                log.exception("fetch_crashed")
                reply = converters.error_to_pb(RuntimeError())
            await _respond(msg, reply)

    async def _hold(self, lease_id: str, released: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(released.wait(), self._lease_timeout)
        except TimeoutError:
            log.info("fetch_lease_expired", lease_id=lease_id, timeout_s=self._lease_timeout)


class _Slot:
    """One semaphore slot that can be given back early, and is given back once at most."""

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self._held = False

    async def __aenter__(self) -> _Slot:
        await self._semaphore.acquire()
        self._held = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._semaphore.release()


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
