"""A pooled HTTP/1.1 client for the gateway's calls to replicas, built on one asyncio Protocol.

Design: every TCP connection is one ``_Connection`` protocol owning an ``httptools`` response
parser; the parser's callbacks fill the current exchange's status, headers and body in place.
A request is one ``transport.write`` of head and body and one Future that the protocol resolves
when the answer is complete: no StreamReader/Writer, no Task per request, no regexes.

Keep-alive connections wait in a per-address LIFO list (the most recently used connection is the
one least likely to have been closed by the server). A connection the server closes while idle
removes itself; a periodic timer callback (not a Task) closes those idle longer than
``idle_seconds``.

Failures are sorted by what the caller may do next:

- ``UpstreamConnectError``: nothing was answered (connect failed, or the connection closed before
  the first byte of the answer). Another replica may be tried. A pooled connection that dies
  this way is first retried once on a fresh connection: a server may close an idle connection
  just as we send on it, and without this retry every replica restart would fail requests.
- ``UpstreamProtocolError``: the answer started and broke off, or was malformed. The request
  may have run.
- ``TimeoutError``: the deadline passed; the connection is closed, never pooled, since an answer
  may still be on its way.

A caller that is cancelled closes its connection for the same reason.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass
from types import TracebackType
from typing import cast

import httptools

from modelplane.libs.http1.messages import Headers

# Caller headers the client writes itself (or that would break framing when sent twice).
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# Methods whose requests carry a body: without one they still say so ("content-length: 0"),
# since some servers wait for a body or reject a POST without a length.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# A stream whose consumer lags stops reading from the socket above this many queued bytes
# (TCP then slows the replica down) and resumes below the low mark.
_STREAM_HIGH_WATER = 1 << 20
_STREAM_LOW_WATER = 1 << 18
# Statuses whose answers have no body even without a length (RFC 9112 section 6.3).
_NO_BODY_STATUSES = frozenset({204, 304})


class UpstreamConnectError(Exception):
    """Nothing was answered: connect refused/failed, or the connection closed/reset before any byte of the
    answer arrived. The caller may try another replica."""


class UpstreamProtocolError(Exception):
    """The answer started but broke off or was malformed; the request may have run."""


@dataclass(slots=True)
class ClientReply:
    status: int
    headers: Headers
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection to ``address`` and the state of the exchange running on it.

    A request exchange (``streaming`` false) collects the body and resolves ``waiter`` with the
    ``ClientReply``. A stream exchange queues body pieces in ``chunks`` and resolves ``waiter``
    (with None) whenever there is something new for the reader: the head, a piece, the end, an
    error; the reader then looks at the state.
    """

    __slots__ = (
        "address",
        "answered",
        "body",
        "busy",
        "chunks",
        "client",
        "complete",
        "error",
        "head_only",
        "headers",
        "headers_done",
        "idle",
        "idle_since",
        "keep_alive",
        "lost_waiter",
        "parser",
        "paused",
        "queued",
        "status",
        "streaming",
        "transport",
        "waiter",
    )

    def __init__(self, client: HttpClient, address: str) -> None:
        self.client = client
        self.address = address
        # Set by connection_made, before anyone else sees the connection.
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpResponseParser(self)
        self.idle = False
        self.idle_since = 0.0
        self.busy = False
        self.streaming = False
        self.head_only = False
        self.answered = False
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.chunks: deque[bytes] = deque()
        self.queued = 0
        self.paused = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future[ClientReply | None] | None = None
        # Set by HttpClient.close() to learn when the socket is really closed.
        self.lost_waiter: asyncio.Future[None] | None = None

    # -- driven by the client -------------------------------------------------------------

    def start(
        self, data: bytes, waiter: asyncio.Future[ClientReply | None], streaming: bool, head_only: bool
    ) -> None:
        """Send one request and reset the exchange state for its answer."""
        self.idle = False
        self.busy = True
        self.streaming = streaming
        self.head_only = head_only
        self.answered = False
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.status = 0
        self.headers = {}
        if streaming:
            self.chunks = deque()
            self.queued = 0
        else:
            self.body.clear()
        self.error = None
        self.waiter = waiter
        self.transport.write(data)

    def abort(self) -> None:
        """Drop the connection now (timeout, cancellation, early exit): it is never reused."""
        self.busy = False
        if not self.complete and self.error is None:
            self.error = UpstreamProtocolError(f"the exchange with {self.address} was abandoned")
        if not self.transport.is_closing():
            self.transport.abort()

    def take_chunk(self) -> bytes:
        chunk = self.chunks.popleft()
        self.queued -= len(chunk)
        if self.paused and self.queued < _STREAM_LOW_WATER:
            self.paused = False
            self.transport.resume_reading()
        return chunk

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.complete:
            # Bytes nobody asked for (an idle connection, or after the answer): the stream is
            # out of step with our requests, so it cannot be trusted any more.
            self.abort()
            return
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(
                UpstreamProtocolError(f"{self.address} switched protocols, which the gateway does not relay")
            )
        except httptools.HttpParserError as exc:
            if self.complete:  # a HEAD answer, finished at its head (see on_headers_complete)
                return
            self._fail(UpstreamProtocolError(f"{self.address} sent a malformed answer: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost settles the exchange

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle:
            self.idle = False
            self.client._forget(self)
        if self.busy and not self.complete and self.error is None:
            if self.headers_done and self._delimited_by_close():
                self.on_message_complete()
            elif not self.answered:
                cause = f": {exc}" if exc is not None else ""
                self._fail(
                    UpstreamConnectError(f"{self.address} closed the connection without answering{cause}")
                )
            else:
                self._fail(
                    UpstreamProtocolError(f"{self.address} closed the connection in the middle of its answer")
                )
        lost_waiter = self.lost_waiter
        if lost_waiter is not None and not lost_waiter.done():
            lost_waiter.set_result(None)

    # -- httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        known = self.headers.get(key)
        self.headers[key] = text if known is None else f"{known}, {text}"

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self.status = status
        if status < 200:  # an interim answer (100 Continue, 103 Early Hints): wait for the real one
            return
        self.headers_done = True
        if self.head_only:
            # The parser cannot be told that a HEAD answer has no body, so finish here and
            # stop parsing; the connection is closed since its framing is now unknown.
            self.on_message_complete()
            raise _StopParsing
        if self.streaming:
            self._wake()

    def on_body(self, data: bytes) -> None:
        if self.streaming:
            self.chunks.append(data)
            self.queued += len(data)
            if self.queued > _STREAM_HIGH_WATER and not self.paused:
                self.paused = True
                self.transport.pause_reading()
            self._wake()
        else:
            self.body.append(data)

    def on_message_complete(self) -> None:
        if self.status < 200:  # the end of an interim answer
            self.headers = {}
            return
        self.complete = True
        keep_alive = not self.head_only and self.parser.should_keep_alive()
        if self.streaming:
            self.keep_alive = keep_alive
            self._wake()
            return
        self.busy = False
        waiter = self.waiter
        self.waiter = None
        if waiter is None or waiter.done():  # the caller gave up just now: its answer is lost
            self.transport.close()
            return
        body = self.body
        waiter.set_result(ClientReply(self.status, Headers.lowered(self.headers), b"".join(body)))
        body.clear()  # a pooled connection must not keep the last answer's pieces alive
        if keep_alive:
            self.client._release(self)
        else:
            self.transport.close()

    # -- helpers ----------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        self.error = error
        if not self.transport.is_closing():
            self.transport.abort()
        if self.streaming:
            self._wake()
            return
        self.busy = False
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def _delimited_by_close(self) -> bool:
        """Whether the answer's body simply runs until the server closes (no length, not chunked)."""
        headers = self.headers
        return (
            "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
            and self.status not in _NO_BODY_STATUSES
        )


class _StopParsing(Exception):
    """Raised from a parser callback to stop parsing the rest of the received bytes."""


class ClientStream:
    """A replica's answer whose head has arrived and whose body is read as it comes.

    Yielded by ``HttpClient.stream``; valid only inside that context.
    """

    __slots__ = ("_conn", "_detached", "_timeout", "headers", "status")

    def __init__(self, conn: _Connection, timeout: float) -> None:
        self.status = conn.status
        self.headers = Headers.lowered(conn.headers)
        self._conn = conn
        self._timeout = timeout
        # Set when the stream's context is left: the connection may serve someone else by then.
        self._detached = False

    async def read(self) -> bytes:
        """The rest of the body (each wait for more of it bounded by the stream's timeout)."""
        parts = [chunk async for chunk in self]
        return b"".join(parts)

    def chunks(self) -> AsyncIterator[bytes]:
        """Body pieces as they arrive; each wait is bounded by the stream's timeout."""
        return self

    def __aiter__(self) -> ClientStream:
        return self

    async def __anext__(self) -> bytes:
        if self._detached:
            raise UpstreamProtocolError(
                f"the stream from {self._conn.address} was read after its context ended"
            )
        conn = self._conn
        while True:
            if conn.chunks:
                return conn.take_chunk()
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                raise StopAsyncIteration
            waiter: asyncio.Future[ClientReply | None] = asyncio.get_running_loop().create_future()
            conn.waiter = waiter
            try:
                async with asyncio.timeout(self._timeout):
                    await waiter
            except TimeoutError:
                conn.abort()
                raise TimeoutError(f"{conn.address} sent nothing for {self._timeout} s") from None
            except BaseException:
                conn.abort()
                raise

    async def aclose(self) -> None:
        """Stop reading: a body not yet complete closes the connection."""
        if not self._detached and not self._conn.complete:
            self._conn.abort()


class _StreamContext(AbstractAsyncContextManager[ClientStream]):
    __slots__ = ("_args", "_client", "_stream")

    def __init__(self, client: HttpClient, args: tuple[str, bytes, bool, float]) -> None:
        self._client = client
        self._args = args
        self._stream: ClientStream | None = None

    async def __aenter__(self) -> ClientStream:
        address, data, head_only, timeout = self._args
        conn = await self._client._open_stream(address, data, head_only, timeout)
        self._stream = ClientStream(conn, timeout)
        return self._stream

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stream = self._stream
        if stream is None:
            return
        self._stream = None
        stream._detached = True
        conn = stream._conn
        # A body that fully arrived leaves the connection clean even if the caller did not
        # read all of it; anything else may still be on the wire.
        if conn.complete and conn.keep_alive and conn.error is None:
            conn.busy = False
            self._client._release(conn)
        else:
            conn.abort()


class HttpClient:
    """HTTP/1.1 requests to replicas over pooled keep-alive connections (see the module docstring)."""

    def __init__(self, *, idle_seconds: float = 30.0, max_idle_per_address: int = 512) -> None:
        if idle_seconds <= 0:
            raise ValueError(f"idle_seconds must be positive, got {idle_seconds}")
        if max_idle_per_address < 0:
            raise ValueError(f"max_idle_per_address must not be negative, got {max_idle_per_address}")
        self._idle_seconds = idle_seconds
        self._max_idle = max_idle_per_address
        self._idle: dict[str, list[_Connection]] = {}
        self._closed = False
        self._sweeper: asyncio.TimerHandle | None = None

    async def request(
        self,
        method: str,
        address: str,
        target: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeout: float,
    ) -> ClientReply:
        """Send one request and read its whole answer; ``timeout`` bounds all of it."""
        if self._closed:
            raise UpstreamConnectError(f"the client is closed (request to {address})")
        data = _encode(method, address, target, headers, body)
        head_only = method == "HEAD"
        try:
            async with asyncio.timeout(timeout):
                conn = self._pooled(address)
                if conn is not None:
                    try:
                        return await self._exchange(conn, data, head_only)
                    except UpstreamConnectError:
                        pass  # closed by the server as we sent: once more on a fresh connection
                return await self._exchange(await self._connect(address), data, head_only)
        except TimeoutError:
            raise TimeoutError(f"{address} did not answer {method} {target} within {timeout} s") from None

    def stream(
        self,
        method: str,
        address: str,
        target: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeout: float,
    ) -> AbstractAsyncContextManager[ClientStream]:
        """Send one request; the context yields the answer once its head arrived.

        ``timeout`` bounds connecting plus waiting for the head, then each wait for a body piece.
        Leaving the context before the body fully arrived closes the connection.
        """
        data = _encode(method, address, target, headers, body)
        return _StreamContext(self, (address, data, method == "HEAD", timeout))

    async def close(self) -> None:
        """Close the pooled connections; later requests raise UpstreamConnectError. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        pools = list(self._idle.values())
        self._idle.clear()
        waiters: list[asyncio.Future[None]] = []
        loop = asyncio.get_running_loop()
        for pool in pools:
            for conn in pool:
                conn.idle = False
                transport = conn.transport
                if not transport.is_closing():
                    conn.lost_waiter = loop.create_future()
                    waiters.append(conn.lost_waiter)
                    transport.close()
        if waiters:
            # Wait for the sockets to be really closed, so none outlives the client.
            await asyncio.wait(waiters, timeout=5.0)

    # -- internals -------------------------------------------------------------------------

    async def _exchange(self, conn: _Connection, data: bytes, head_only: bool) -> ClientReply:
        waiter: asyncio.Future[ClientReply | None] = asyncio.get_running_loop().create_future()
        conn.start(data, waiter, False, head_only)
        try:
            reply = await waiter
        except BaseException:
            conn.abort()  # cancelled or timed out: the answer may still come, so never reuse it
            raise
        return reply  # type: ignore[return-value]

    async def _open_stream(self, address: str, data: bytes, head_only: bool, timeout: float) -> _Connection:
        if self._closed:
            raise UpstreamConnectError(f"the client is closed (stream from {address})")
        try:
            async with asyncio.timeout(timeout):
                conn = self._pooled(address)
                if conn is not None:
                    try:
                        await self._await_head(conn, data, head_only)
                        return conn
                    except UpstreamConnectError:
                        pass  # closed by the server as we sent: once more on a fresh connection
                conn = await self._connect(address)
                await self._await_head(conn, data, head_only)
                return conn
        except TimeoutError:
            raise TimeoutError(f"{address} did not start its answer within {timeout} s") from None

    async def _await_head(self, conn: _Connection, data: bytes, head_only: bool) -> None:
        waiter: asyncio.Future[ClientReply | None] = asyncio.get_running_loop().create_future()
        conn.start(data, waiter, True, head_only)
        try:
            await waiter
        except BaseException:
            conn.abort()
            raise
        if conn.error is not None and not conn.headers_done:
            raise conn.error

    def _pooled(self, address: str) -> _Connection | None:
        """The most recently used idle connection to ``address`` that is still open."""
        pool = self._idle.get(address)
        while pool:
            conn = pool.pop()
            conn.idle = False
            if not conn.transport.is_closing():
                return conn
        return None

    async def _connect(self, address: str) -> _Connection:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise UpstreamConnectError(f"cannot connect to {address!r}: not a host:port address")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        try:
            _, conn = await asyncio.get_running_loop().create_connection(
                lambda: _Connection(self, address), host, int(port)
            )
        except OSError as exc:
            raise UpstreamConnectError(f"cannot connect to {address}: {exc}") from exc
        return conn

    def _release(self, conn: _Connection) -> None:
        """Return a connection whose exchange finished cleanly to its address's idle list."""
        transport = conn.transport
        if self._closed or transport.is_closing():
            transport.close()
            return
        pool = self._idle.get(conn.address)
        if pool is None:
            pool = self._idle[conn.address] = []
        if len(pool) >= self._max_idle:
            transport.close()
            return
        if conn.paused:
            conn.paused = False
            transport.resume_reading()
        loop = asyncio.get_running_loop()
        conn.idle = True
        conn.idle_since = loop.time()
        pool.append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)

    def _forget(self, conn: _Connection) -> None:
        """Remove an idle connection the server closed."""
        pool = self._idle.get(conn.address)
        if pool is not None:
            with suppress(ValueError):
                pool.remove(conn)

    def _sweep_interval(self) -> float:
        # A quarter of the idle limit: a connection lives at most 1.25 x idle_seconds unused.
        return self._idle_seconds / 4

    def _sweep(self) -> None:
        """Close connections idle for longer than ``idle_seconds`` (the oldest sit at the front)."""
        self._sweeper = None
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        oldest_allowed = loop.time() - self._idle_seconds
        remaining = 0
        for pool in self._idle.values():
            expired = 0
            while expired < len(pool) and pool[expired].idle_since < oldest_allowed:
                expired += 1
            if expired:
                stale = pool[:expired]
                del pool[:expired]
                for conn in stale:
                    conn.idle = False
                    conn.transport.close()
            remaining += len(pool)
        if remaining:
            self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)


def _encode(method: str, address: str, target: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """The request's bytes: head, our framing headers, the caller's others, then the body."""
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {address}\r\n"]
    for name, value in headers.items():
        if name.lower() not in _OWN_HEADERS:
            lines.append(f"{name}: {value}\r\n")
    if body is not None:
        lines.append(f"content-length: {len(body)}\r\n")
    elif method in _BODY_METHODS:
        lines.append("content-length: 0\r\n")
    lines.append("\r\n")
    head = "".join(lines)
    # Each piece ends in one CRLF, the first (request line + host) in two: any other CR or LF came
    # from the caller and would end a line early (request smuggling). Two counts over the whole
    # head cost less than a check per value.
    line_ends = len(lines) + 1
    if head.count("\n") != line_ends or head.count("\r") != line_ends or " " in target:
        raise ValueError(_unsafe_part(method, target, headers))
    encoded = head.encode()
    return encoded + body if body else encoded


def _unsafe_part(method: str, target: str, headers: Mapping[str, str]) -> str:
    """Which part of a refused request would have broken its framing (the error path of _encode)."""
    for name, value in headers.items():
        if any(mark in text for text in (name, value) for mark in "\r\n"):
            return f"header {name!r} contains a line break"
    return f"invalid request line: {method!r} {target!r}"
