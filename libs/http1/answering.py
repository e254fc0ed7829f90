"""The answering half of an HTTP/1.1 server connection: answers owed, in order, and closing.

Design: the connection (connection.py) parses requests and appends each complete one, or an
answer refusing the input, to a small queue. One worker task per busy connection takes the
entries in order, awaits the handler for each request and writes the answer, so pipelined
requests are answered strictly in the order they arrived and at most one request per connection
is in the handler. The worker ends when the queue is empty and the next request starts a new
one: pipelined requests share one task and an idle connection has none.

Each queued request carries its ``RequestHead``: its ``on_finish`` callbacks run when its
handler returns, or when the request is dropped unhandled (the connection closed before it,
the worker was cancelled), so what the admission hook took for it is given back exactly once.
An answer refusing input ends the connection with a lingering close (``_linger``).
"""

from __future__ import annotations

import abc
import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import structlog

from modelplane.libs.http1 import responses
from modelplane.libs.http1.limits import HttpLimits
from modelplane.libs.http1.messages import (
    Admit,
    HttpRequest,
    HttpResponse,
    RequestHead,
    Response,
    StreamingResponse,
)

log = structlog.get_logger(__name__)

RequestHandler = Callable[[HttpRequest], Awaitable[Response]]


# Complete requests one connection may have waiting before it stops reading more: pipelining
# clients are rare, and a bound keeps one connection from queueing unbounded work.
PIPELINE_DEPTH = 4
# Seconds a rejected connection keeps reading (and dropping) input after its answer, at most.
_LINGER_SECONDS = 2.0

# A queued request (with its head, whose finishers run once it is handled or dropped) or a
# rejection answer (head None), whether the connection stays open after it, and HTTP/1.0.
_Pending = tuple[HttpRequest | Response, bool, bool, RequestHead | None]


def _drop(queue: deque[_Pending]) -> None:
    """Forget the queued requests that will not be handled, giving back what their heads took."""
    while queue:
        head = queue.popleft()[3]
        if head is not None:
            head.finish()


class ConnectionOwner:
    """What a connection needs from its server: handler, admission hook, limits, connection set."""

    def __init__(self, handler: RequestHandler, limits: HttpLimits, admit: Admit | None = None) -> None:
        self.handler = handler
        self.admit = admit
        self.limits = limits
        self.connections: set[Answering] = set()
        self.stopping = False


class Answering(asyncio.Protocol, abc.ABC):
    """The state both halves of a connection share, and the worker that answers its queue."""

    def __init__(self, owner: ConnectionOwner) -> None:
        self._owner = owner
        self._handler = owner.handler
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._queue: deque[_Pending] = deque()
        self.task: asyncio.Task[None] | None = None
        self._closed = False
        self._reading_paused = False
        self._writing_paused = False
        self._writable: asyncio.Future[None] | None = None
        self._continue_owed = False
        self._timer: asyncio.TimerHandle | None = None
        # Rejected and half-closed: input is read and dropped until the client closes (see _linger).
        self._lingering = False
        self._last_active = 0.0

    # -- writing

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_writer()

    def _start_worker(self) -> None:
        self.task = self._loop.create_task(self._answer_queue(), name="http1-connection")

    async def _answer_queue(self) -> None:
        queue = self._queue
        rejected = False
        try:
            while queue:
                item, keep_alive, http10, head = queue[0]
                if isinstance(item, HttpRequest):
                    path = item.raw_path
                    head_only = item.method == "HEAD"
                    try:
                        response = await self._call_handler(item)
                    finally:
                        if head is not None:
                            head.finish()
                else:
                    response, path, head_only = item, "", False
                    rejected = True
                # The request (and its body) is the handler's alone from here on.
                del item, head
                queue.popleft()
                if self._closed:
                    # The client went away while its request was in the handler: drop the answer.
                    if isinstance(response, StreamingResponse):
                        await responses.aclose_quietly(response.chunks, path)
                    _drop(queue)
                    return
                close = not keep_alive or self._owner.stopping
                try:
                    if isinstance(response, HttpResponse):
                        data, close = responses.complete(response, close, http10, head_only)
                        self.write(data)
                    else:
                        close = await responses.write_stream(self, response, close, http10, head_only, path)
                except Exception:
                    log.exception("response_failed", path=path)
                    close = True
                if close:
                    _drop(queue)
                    if rejected:
                        self._linger()
                    else:
                        self._close()
                    return
                if self._reading_paused and len(queue) < PIPELINE_DEPTH and self._transport is not None:
                    self._reading_paused = False
                    self._transport.resume_reading()
            if self._continue_owed:
                self._continue_owed = False
                self.write(responses.CONTINUE)
        finally:
            # Empty unless the worker was cancelled (a stopping server aborts its connections).
            _drop(queue)
            self.task = None
            self._last_active = self._loop.time()

    async def _call_handler(self, request: HttpRequest) -> Response:
        try:
            return await self._handler(request)
        except Exception:
            log.exception("request_crashed", path=request.raw_path)
            return responses.error_response(500, "internal error")

    @property
    def closed(self) -> bool:
        return self._closed

    async def writable(self) -> None:
        """Return once the transport takes more data (at once unless writing is paused)."""
        if self._writing_paused and not self._closed:
            await self._wait_writable()

    async def _wait_writable(self) -> None:
        waiter = self._writable
        if waiter is None:
            waiter = self._writable = self._loop.create_future()
        await waiter

    def _wake_writer(self) -> None:
        waiter = self._writable
        if waiter is not None:
            self._writable = None
            if not waiter.done():
                waiter.set_result(None)

    def write(self, data: bytes) -> None:
        if not self._closed and self._transport is not None:
            self._transport.write(data)

    # -- closing

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._transport is not None:
                self._transport.close()
            self._wake_writer()

    def _linger(self) -> None:
        """Close after a rejection without losing the answer to a reset.

        Closing a socket with unread input makes the kernel send a reset, and the client may
        lose the error answer still in flight (nginx's lingering close): the server ends its
        side, then reads and discards what the client still sends, for a short while at most.
        """
        transport = self._transport
        if self._closed or transport is None or not transport.can_write_eof():
            self._close()
            return
        self._lingering = True
        transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        if self._timer is not None:
            self._timer.cancel()
        self._schedule(self._loop.time() + _LINGER_SECONDS)

    def close_if_idle(self) -> None:
        """Close now unless a request is in the handler (called by ``HttpServer.stop``)."""
        if self.task is None:
            self._close()

    def abort(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.abort()
        self._wake_writer()

    # -- the connection's one timer (connection.py decides what it enforces)

    def _schedule(self, when: float) -> None:
        self._timer = self._loop.call_at(when, self._on_timer)

    def _arm(self, deadline: float) -> None:
        """Make the timer fire no later than ``deadline`` (it is moved only to an earlier time)."""
        timer = self._timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self._schedule(deadline)

    @abc.abstractmethod
    def _on_timer(self) -> None:
        """The timer fired: the connection half enforces whichever deadline it set."""
