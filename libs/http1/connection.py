"""One client connection of the HTTP/1.1 server: an asyncio Protocol around an httptools parser.

Design: the parser's callbacks collect one request at a time (url pieces, headers in a dict with
lower-case names, body pieces) and, when the message is complete, append it to the connection's
small queue, which answering.py's worker answers in order. Reading pauses while several
requests wait in the queue. A client that half-closes its side is treated as gone (as uvicorn does): a proxy must notice
departed clients, and HTTP clients do not half-close to wait for an answer.

Bounded input (``HttpLimits``): a head goes to the parser only once its end has arrived (until
then it waits in one buffer, checked on every read): httptools concatenates the pieces of a
header that arrive in separate reads, quadratic for a header trickled byte by byte. The
callbacks count the target, each header, their number and sum (414 / 431). One timer per
connection, not reset per request, enforces the current phase's deadline when it fires: the
head within ``header_timeout_seconds`` of a new connection or a later request's first byte, the
next body piece within ``body_timeout_seconds`` (408 and close), idle keep-alive connections.

Admission (``Admit``, optional): once a head is complete and passed the server's own checks,
the owner's hook sees it (``RequestHead``) before any body byte is read; an answer from it is
queued like an error and ends the connection, the body unread (no "100 Continue" is sent). The
head's ``on_finish`` callbacks run when its handler returns or when the request is dropped
before reaching it. A body's pieces are released once joined: the handler holds it once.

Errors the client caused (a malformed request, an upgrade, a body over the limit) are answers
put in the same queue, so they too come after the answers already owed, and they end the
connection. A handler that raises is logged and answered with 500; the connection stays usable.
"""

from __future__ import annotations

import asyncio
from typing import cast

import httptools
import structlog

from modelplane.libs.http1 import responses
from modelplane.libs.http1.answering import PIPELINE_DEPTH, Answering, ConnectionOwner
from modelplane.libs.http1.limits import HeadBounds
from modelplane.libs.http1.messages import Admit, Headers, HttpRequest, RequestHead, Response

log = structlog.get_logger(__name__)

_METHODS = {m: m.decode("ascii") for m in (b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH")}
_OVERLOADED, _ = responses.complete(
    responses.error_response(503, "too many connections", {"retry-after": "1"}), True, False, False
)


class StopParsing(Exception):
    """Raised from a parser callback after the request was rejected, to stop feeding it."""


def _head_ends(data: bytes | bytearray, start: int) -> bool:
    """Whether ``data`` holds the blank line that ends a head, looking from ``start`` on."""
    # llhttp also accepts a bare LF as a line end: search for both forms.
    return data.find(b"\n\r\n", start) >= 0 or data.find(b"\n\n", start) >= 0


class Connection(Answering):
    """One client connection: parses requests and queues them (answering.py answers them in order)."""

    def __init__(self, owner: ConnectionOwner) -> None:
        super().__init__(owner)
        self._limits = owner.limits
        self._parser = httptools.HttpRequestParser(self)
        # Set once no further request will be read (rejected input, or a request without keep-alive).
        self._ignore_input = False
        # Bytes of a head whose end has not arrived yet (not fed to the parser).
        self._head_buffer = bytearray()
        # When the head being read began (None between requests): its deadline runs from here.
        self._head_started: float | None = None
        # The parser has begun a message (part of its head may be inside the parser).
        self._message_started = False
        # The last bytes fed to the parser (a head's blank line may start in them).
        self._tail = b""
        self._in_body = False
        # The request being parsed.
        self._url: list[bytes] = []
        self._bounds = HeadBounds(self._limits)
        self._headers: dict[str, str] = {}
        self._repeated: dict[str, list[str]] | None = None
        # The request whose body is being read (its head complete), else None.
        self._head: RequestHead | None = None
        self._body: list[bytes] = []
        self._body_size = 0

    # -- transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        owner = self._owner
        if len(owner.connections) >= self._limits.max_connections:
            # Answered rather than silently dropped, so the client can tell overload from a fault.
            self._closed = True
            self._transport.write(_OVERLOADED)
            self._transport.close()
            return
        owner.connections.add(self)
        if owner.stopping:
            self._close()
            return
        now = self._last_active = self._loop.time()
        self._head_started = now
        self._schedule(now + min(self._limits.header_timeout_seconds, self._limits.keepalive_seconds))

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._owner.connections.discard(self)
        self._drop_head()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake_writer()

    def data_received(self, data: bytes) -> None:
        if self._ignore_input or self._closed:
            return
        now = self._last_active = self._loop.time()
        if not self._in_body:
            buffer = self._head_buffer
            if buffer:
                start = max(len(buffer) - 2, 0)
                buffer += data
                if not _head_ends(buffer, start):
                    self._head_waiting(now)
                    return
                data = bytes(buffer)
                buffer.clear()
            elif not _head_ends(self._tail + data if self._message_started else data, 0):
                # (The parser may hold the start of this head, and the blank line may straddle.)
                buffer += data
                self._head_waiting(now)
                return
        self._feed(data)
        if self._in_body and not self._ignore_input:
            self._arm(now + self._limits.body_timeout_seconds)

    def _feed(self, data: bytes) -> None:
        self._tail = data[-2:]
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

    def _head_waiting(self, now: float) -> None:
        """Part of a head arrived without its end: check its size so far and start its clock."""
        if self._head_started is None:
            self._head_started = now
        rejection = self._bounds.unfinished(self._head_buffer, not self._message_started)
        if rejection is not None:
            self._reject(*rejection)
        else:
            self._arm(self._head_started + self._limits.header_timeout_seconds)

    # -- parser callbacks

    def on_message_begin(self) -> None:
        if self._ignore_input:
            raise StopParsing
        self._message_started = True
        if self._head_started is None:
            self._head_started = self._last_active
        self._url = []
        self._bounds.reset()
        self._headers = {}
        self._repeated = None
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        rejection = self._bounds.url(url)
        if rejection is not None:
            self._reject(*rejection)
            raise StopParsing
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        rejection = self._bounds.header(name, value)
        if rejection is not None:
            self._reject(*rejection)
            raise StopParsing
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self._headers
        if key not in headers:
            headers[key] = text
            return
        # A repeated header: its values are joined once, when the head is complete.
        repeated = self._repeated
        if repeated is None:
            repeated = self._repeated = {}
        values = repeated.get(key)
        if values is None:
            repeated[key] = [headers[key], text]
        else:
            values.append(text)

    def on_headers_complete(self) -> None:
        self._head_started = None
        self._in_body = True
        headers = self._headers
        if self._repeated is not None:
            for key, values in self._repeated.items():
                headers[key] = ", ".join(values)
        declared = headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                self._reject(400, "bad request: invalid content-length")
                raise StopParsing from None
            if length > self._limits.max_body_bytes:
                self._reject_too_large()
                raise StopParsing
        url = b"".join(self._url)
        if url[:1] == b"/" and b"?" not in url:
            path, query = url, b""
        else:
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                self._reject(400, "bad request: invalid request target")
                raise StopParsing from None
            path = parsed.path or b"/"
            query = parsed.query or b""
        method = self._parser.get_method()
        head = self._head = RequestHead(
            _METHODS.get(method) or method.decode("latin-1"),
            path.decode("latin-1"),
            query.decode("latin-1"),
            Headers.lowered(headers),
        )
        admit = self._owner.admit
        if admit is not None:
            # Before "100 Continue" is sent: a refused body must not be invited.
            refusal = self._admit(admit, head)
            if refusal is not None:
                self._refuse(refusal)
                raise StopParsing
        expect = headers.get("expect")
        if (
            expect is not None
            and expect.lower() == "100-continue"
            and self._parser.get_http_version() == "1.1"
        ):
            # The interim answer must not overtake answers still owed to earlier requests.
            if self.task is None and not self._queue:
                self.write(responses.CONTINUE)
            else:
                self._continue_owed = True

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._limits.max_body_bytes:
            self._reject_too_large()
            raise StopParsing
        self._body.append(body)
        # A client that sends the body without waiting needs no 100 Continue any more.
        self._continue_owed = False

    def on_message_complete(self) -> None:
        self._in_body = False
        self._message_started = False
        parser = self._parser
        if parser.should_upgrade():
            self._reject(400, "bad request: protocol upgrade is not supported")
            raise StopParsing
        head, self._head = self._head, None
        assert head is not None  # on_headers_complete made it or raised
        body = self._body
        # The pieces are dropped now that they are joined: kept until the next request, they
        # would hold a large body twice while it is in the handler.
        self._body = []
        request = HttpRequest(
            head.method, head.raw_path, head.query, head.headers, b"".join(body) if body else b"", head.state
        )
        keep_alive = parser.should_keep_alive()
        if not keep_alive:
            self._ignore_input = True
        queue = self._queue
        queue.append((request, keep_alive, parser.get_http_version() == "1.0", head))
        if self.task is None:
            self._start_worker()
        elif len(queue) >= PIPELINE_DEPTH and not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    # -- answering

    def _reject_too_large(self) -> None:
        self._reject(413, f"request body is larger than {self._limits.max_body_bytes} bytes")

    def _reject(self, status: int, message: str) -> None:
        """Queue an error answer after those already owed; the connection closes after it."""
        self._refuse(responses.error_response(status, message))

    def _refuse(self, response: Response) -> None:
        """Queue ``response`` after the answers owed and read no more: the connection closes after it."""
        self._ignore_input = True
        self._continue_owed = False
        self._head_buffer.clear()
        self._body = []
        self._drop_head()
        self._queue.append((response, False, False, None))
        if self.task is None:
            self._start_worker()

    def _admit(self, admit: Admit, head: RequestHead) -> Response | None:
        try:
            return admit(head)
        except Exception:
            log.exception("http_admit_failed", path=head.raw_path)
            return responses.error_response(500, "internal error")

    def _drop_head(self) -> None:
        """The request being read will not reach the handler: give back what its head took."""
        head, self._head = self._head, None
        if head is not None:
            head.finish()

    # -- deadlines

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        limits = self._limits
        now = self._loop.time()
        if self._lingering:
            self._close()
            return
        if self._ignore_input or self._reading_paused:
            # Nothing is read now: the worker answers and closes, or resumes reading.
            self._schedule(now + limits.keepalive_seconds)
            return
        if self._in_body:
            deadline = self._last_active + limits.body_timeout_seconds
            if now >= deadline:
                self._reject(408, f"no request body data for {limits.body_timeout_seconds} seconds")
                return
        elif self._head_started is not None:
            deadline = self._head_started + limits.header_timeout_seconds
            if self._head_buffer or self._message_started:
                if now >= deadline:
                    self._reject(
                        408, f"request head not complete within {limits.header_timeout_seconds} seconds"
                    )
                    return
            elif now >= deadline:
                # A new connection that never sent a byte: nothing to answer.
                self._head_started = None
                if self.task is None:
                    self._close()
                    return
                deadline = now + limits.keepalive_seconds
        elif self.task is not None:
            deadline = now + limits.keepalive_seconds
        else:
            deadline = self._last_active + limits.keepalive_seconds
            if now >= deadline:
                self._close()
                return
        self._schedule(deadline)
