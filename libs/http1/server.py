"""The gateway's HTTP/1.1 server: one asyncio Protocol and one httptools parser per connection.

Design: the parser's callbacks collect one request at a time (url pieces, headers in a dict with
lower-case names, body pieces) and, when the message is complete, append it to the connection's
small queue. One worker task per busy connection takes requests from the queue in order, awaits
the handler for each and writes the answer, so pipelined requests are answered strictly in the
order they arrived and at most one request per connection is in the handler. The worker ends
when the queue is empty and the next request starts a new one: pipelined requests share one
task and an idle connection has none. Reading pauses while several requests wait in the queue.
A client that half-closes its side is treated as gone (as uvicorn does): a proxy must notice
departed clients, and HTTP clients do not half-close to wait for an answer.

Errors the client caused (a malformed request, an upgrade, a body over the limit) are answers
put in the same queue, so they too come after the answers already owed, and they end the
connection. A handler that raises is logged and answered with 500; the connection stays usable.

Idle keep-alive connections are closed by one timer per connection that is not reset per
request: the timer compares the time of the last activity when it fires and sleeps again for
what remains. ``stop()`` closes the listener and idle connections at once, lets requests in the
handlers finish for a grace period and then aborts what is left.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import cast

import httptools
import structlog

from modelplane.libs.http1.messages import (
    Headers,
    HttpRequest,
    HttpResponse,
    Response,
    StreamingResponse,
)

log = structlog.get_logger(__name__)

RequestHandler = Callable[[HttpRequest], Awaitable[Response]]

# Complete requests one connection may have waiting before it stops reading more: pipelining
# clients are rare, and a bound keeps one connection from queueing unbounded work.
_PIPELINE_DEPTH = 4
# listen(2) backlog: a burst of new connections must not be refused while the loop is busy.
_BACKLOG = 1024
# How long stop() waits for handlers it cancelled after the grace period.
_CANCEL_WAIT_SECONDS = 1.0

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
# Headers the server writes itself; a handler's own values for them are dropped.
_MANAGED_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
_STATUS_LINES = {int(s): f"HTTP/1.1 {int(s)} {s.phrase}\r\n" for s in HTTPStatus}
_METHODS = {m: m.decode("ascii") for m in (b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH")}


class _StopParsing(Exception):
    """Raised from a parser callback after the request was rejected, to stop feeding it."""


def _status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} Unknown\r\n"


def _error(status: int, message: str) -> HttpResponse:
    body = json.dumps({"error": message}).encode()
    return HttpResponse(status, body, {"content-type": "application/json"})


def _head(status: int, headers: dict[str, str], extra: str, close: bool, http10: bool) -> tuple[bytes, bool]:
    """The status line and header block, and whether the connection closes after this answer.

    ``extra`` holds the framing headers the server computed; a handler's own ``connection:
    close`` is honoured, its other framing headers are dropped.
    """
    parts = [_status_line(status)]
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _MANAGED_HEADERS:
            if lowered == "connection" and value.lower() == "close":
                close = True
            continue
        parts.append(f"{name}: {value}\r\n")
    parts.append(extra)
    if close:
        parts.append("connection: close\r\n\r\n")
    elif http10:
        # HTTP/1.0 closes by default: say that this connection stays open.
        parts.append("connection: keep-alive\r\n\r\n")
    else:
        parts.append("\r\n")
    return "".join(parts).encode("latin-1", "replace"), close


async def _aclose(chunks: AsyncIterator[bytes], path: str) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        log.exception("stream_close_failed", path=path)


class HttpServer:
    """Serves HTTP/1.1 (and 1.0) on one listening address by calling ``handler`` per request."""

    def __init__(
        self, handler: RequestHandler, *, max_body_bytes: int, keepalive_seconds: float = 75.0
    ) -> None:
        if max_body_bytes < 0:
            raise ValueError("max_body_bytes must be >= 0")
        if keepalive_seconds <= 0:
            raise ValueError("keepalive_seconds must be > 0")
        self._handler = handler
        self._max_body_bytes = max_body_bytes
        self._keepalive_seconds = keepalive_seconds
        self._server: asyncio.Server | None = None
        self._port = 0
        self._connections: set[_Connection] = set()
        self._stopping = False
        self._stopped: asyncio.Event | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (port 0 picks a free one, see ``port``)."""
        if self._server is not None or self._stopping:
            raise RuntimeError("HttpServer.start() may be called once")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._connection, host, port, backlog=_BACKLOG)
        self._port = self._server.sockets[0].getsockname()[1]

    @property
    def port(self) -> int:
        """The bound port (0 before ``start()``)."""
        return self._port

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop accepting, close idle connections, let running requests finish, then abort."""
        if self._stopped is not None:
            await self._stopped.wait()
            return
        self._stopped = asyncio.Event()
        self._stopping = True
        try:
            await self._shut_down(grace_seconds)
        except Exception:
            log.exception("http_server_stop_failed")
        finally:
            self._stopped.set()

    async def _shut_down(self, grace_seconds: float) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.close_if_idle()
        busy = self._busy_tasks()
        if busy:
            await asyncio.wait(busy, timeout=grace_seconds)
        for connection in list(self._connections):
            connection.abort()
        # Handlers still running past the grace period are cancelled so no task outlives stop().
        busy = self._busy_tasks()
        for task in busy:
            task.cancel()
        if busy:
            _, pending = await asyncio.wait(busy, timeout=_CANCEL_WAIT_SECONDS)
            for task in pending:
                log.error("http_request_ignored_cancel", task=task.get_name())
        if self._server is not None:
            await self._server.wait_closed()

    def _busy_tasks(self) -> set[asyncio.Task[None]]:
        return {c.task for c in self._connections if c.task is not None}

    def _connection(self) -> _Connection:
        return _Connection(self)


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, queues them, answers them in order."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._handler = server._handler
        self._max_body_bytes = server._max_body_bytes
        self._keepalive_seconds = server._keepalive_seconds
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        # (request or a rejection answer, keep-alive, HTTP/1.0)
        self._queue: deque[tuple[HttpRequest | HttpResponse, bool, bool]] = deque()
        self.task: asyncio.Task[None] | None = None
        self._closed = False
        # Set once no further request will be read (rejected input, or a request without keep-alive).
        self._ignore_input = False
        self._reading_paused = False
        self._writing_paused = False
        self._writable: asyncio.Future[None] | None = None
        self._continue_owed = False
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_active = 0.0
        # The request being parsed.
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0

    # -- transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        server = self._server
        server._connections.add(self)
        if server._stopping:
            self._close()
            return
        self._last_active = self._loop.time()
        self._idle_timer = self._loop.call_later(self._keepalive_seconds, self._on_idle_timer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server._connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._wake_writer()

    def data_received(self, data: bytes) -> None:
        if self._ignore_input or self._closed:
            return
        self._last_active = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(400, "bad request: protocol upgrade is not supported")
        except httptools.HttpParserError as exc:
            if self._ignore_input:
                return  # a callback rejected the request or saw the last one: expected
            if isinstance(exc, httptools.HttpParserCallbackError):
                log.error("http_parser_callback_failed", error=repr(exc.__context__))
            self._reject(400, f"bad request: {exc}")

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_writer()

    # -- parser callbacks

    def on_message_begin(self) -> None:
        if self._ignore_input:
            raise _StopParsing
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        known = self._headers.get(key)
        self._headers[key] = text if known is None else f"{known}, {text}"

    def on_headers_complete(self) -> None:
        headers = self._headers
        declared = headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                self._reject(400, "bad request: invalid content-length")
                raise _StopParsing from None
            if length > self._max_body_bytes:
                self._reject_too_large()
                raise _StopParsing
        expect = headers.get("expect")
        if (
            expect is not None
            and expect.lower() == "100-continue"
            and self._parser.get_http_version() == "1.1"
        ):
            # The interim answer must not overtake answers still owed to earlier requests.
            if self.task is None and not self._queue:
                self._write(_CONTINUE)
            else:
                self._continue_owed = True

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._max_body_bytes:
            self._reject_too_large()
            raise _StopParsing
        self._body.append(body)
        # A client that sends the body without waiting needs no 100 Continue any more.
        self._continue_owed = False

    def on_message_complete(self) -> None:
        parser = self._parser
        if parser.should_upgrade():
            self._reject(400, "bad request: protocol upgrade is not supported")
            raise _StopParsing
        url = self._url
        if url[:1] == b"/" and b"?" not in url:
            path, query = url, b""
        else:
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                self._reject(400, "bad request: invalid request target")
                raise _StopParsing from None
            path = parsed.path or b"/"
            query = parsed.query or b""
        method = parser.get_method()
        body = self._body
        request = HttpRequest(
            _METHODS.get(method) or method.decode("latin-1"),
            path.decode("latin-1"),
            query.decode("latin-1"),
            Headers.lowered(self._headers),
            b"".join(body) if body else b"",
        )
        keep_alive = parser.should_keep_alive()
        if not keep_alive:
            self._ignore_input = True
        queue = self._queue
        queue.append((request, keep_alive, parser.get_http_version() == "1.0"))
        if self.task is None:
            self._start_worker()
        elif len(queue) >= _PIPELINE_DEPTH and not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    # -- answering

    def _reject_too_large(self) -> None:
        self._reject(413, f"request body is larger than {self._max_body_bytes} bytes")

    def _reject(self, status: int, message: str) -> None:
        """Queue an error answer after those already owed; the connection closes after it."""
        self._ignore_input = True
        self._continue_owed = False
        self._queue.append((_error(status, message), False, False))
        if self.task is None:
            self._start_worker()

    def _start_worker(self) -> None:
        self.task = self._loop.create_task(self._answer_queue(), name="http1-connection")

    async def _answer_queue(self) -> None:
        queue = self._queue
        try:
            while queue:
                item, keep_alive, http10 = queue[0]
                if isinstance(item, HttpRequest):
                    request = item
                    response = await self._call_handler(request)
                    path = request.raw_path
                    head_only = request.method == "HEAD"
                else:
                    response, path, head_only = item, "", False
                queue.popleft()
                if self._closed:
                    # The client went away while its request was in the handler: drop the answer.
                    if isinstance(response, StreamingResponse):
                        await _aclose(response.chunks, path)
                    queue.clear()
                    return
                close = not keep_alive or self._server._stopping
                try:
                    if isinstance(response, HttpResponse):
                        close = self._write_response(response, close, http10, head_only)
                    else:
                        close = await self._write_stream(response, close, http10, head_only, path)
                except Exception:
                    log.exception("response_failed", path=path)
                    close = True
                if close:
                    queue.clear()
                    self._close()
                    return
                if self._reading_paused and len(queue) < _PIPELINE_DEPTH and self._transport is not None:
                    self._reading_paused = False
                    self._transport.resume_reading()
            if self._continue_owed:
                self._continue_owed = False
                self._write(_CONTINUE)
        finally:
            self.task = None
            self._last_active = self._loop.time()

    async def _call_handler(self, request: HttpRequest) -> Response:
        try:
            return await self._handler(request)
        except Exception:
            log.exception("request_crashed", path=request.raw_path)
            return _error(500, "internal error")

    def _write_response(self, response: HttpResponse, close: bool, http10: bool, head_only: bool) -> bool:
        status = response.status
        body = response.body
        if status < 200 or status == 204 or status == 304:
            extra = ""
            body = b""
        else:
            extra = f"content-length: {len(body)}\r\n"
        head, close = _head(status, response.headers, extra, close, http10)
        self._write(head if head_only or not body else head + body)
        return close

    async def _write_stream(
        self, response: StreamingResponse, close: bool, http10: bool, head_only: bool, path: str
    ) -> bool:
        chunks = response.chunks
        # An HTTP/1.0 client knows no chunked encoding: the end of the body is the end of the connection.
        chunked = not http10
        framing = "transfer-encoding: chunked\r\n" if chunked else ""
        head, close = _head(response.status, response.headers, framing, close or http10, False)
        self._write(head)
        if head_only:
            await _aclose(chunks, path)
            return close
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                if self._writing_paused and not self._closed:
                    await self._wait_writable()
                if self._closed:
                    break
                self._write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
        except Exception:
            # The status line is out already: all that is left is to cut the body short.
            log.exception("stream_crashed", path=path)
            await _aclose(chunks, path)
            return True
        if self._closed:
            await _aclose(chunks, path)
            return True
        if chunked:
            self._write(_LAST_CHUNK)
        return close

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

    def _write(self, data: bytes) -> None:
        if not self._closed and self._transport is not None:
            self._transport.write(data)

    # -- closing

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._transport is not None:
                self._transport.close()
            self._wake_writer()

    def close_if_idle(self) -> None:
        """Close now unless a request is in the handler (called by ``HttpServer.stop``)."""
        if self.task is None:
            self._close()

    def abort(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.abort()
        self._wake_writer()

    def _on_idle_timer(self) -> None:
        self._idle_timer = None
        if self._closed:
            return
        keepalive = self._keepalive_seconds
        if self.task is not None:
            delay = keepalive
        else:
            idle = self._loop.time() - self._last_active
            if idle >= keepalive:
                self._close()
                return
            delay = keepalive - idle
        self._idle_timer = self._loop.call_later(delay, self._on_idle_timer)
