"""The gateway's HTTP/1.1 server: http1's server plus TLS and a look at each request's head.

Why a subclass: a request for a model with no ready replica will be held with its whole body in
memory, so the bytes it may hold are reserved (held_bytes.py) from its declared
``Content-Length`` as soon as its head arrives, before the body is read; past the bound it gets
503 with Retry-After at once and its body is never read (a client that sent ``Expect:
100-continue`` never sends it). A foreign Origin or a missing token is refused the same way.
The reservation travels with the request (``state[RESERVATION]``) and the REST adapter releases
it when the request ends; a connection lost mid-body releases it here. ``admit`` is the REST
adapter's (rest.py): the server itself knows nothing of models.
TLS: the listener wraps connections with the given ``ssl.SSLContext``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Final

from modelplane.libs.http1.connection import Connection, ConnectionOwner, StopParsing
from modelplane.libs.http1.limits import HttpLimits
from modelplane.libs.http1.messages import Headers, HttpRequest, HttpResponse
from modelplane.libs.http1.server import _BACKLOG, HttpServer, RequestHandler
from modelplane.services.gateway.held_bytes import Reservation

# HttpRequest.state key of the bytes reserved for a held request (a ``Reservation``).
RESERVATION: Final = "held_bytes"

# (method, raw request target, headers) -> None to read the request, a Reservation to read it
# holding those bytes, or the answer that refuses it unread.
Admit = Callable[[str, str, Headers], Reservation | HttpResponse | None]


class GatewayHttpServer(HttpServer):
    """``HttpServer`` with optional TLS and an ``admit`` check of every request head."""

    def __init__(
        self,
        handler: RequestHandler,
        limits: HttpLimits,
        *,
        admit: Admit | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(handler, limits)
        self._admit = admit
        self._ssl = ssl_context

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port``, over TLS when an SSL context was given."""
        if self._ssl is None:
            await super().start(host, port)
            return
        if self._server is not None or self._owner.stopping:
            raise RuntimeError("HttpServer.start() may be called once")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._connection, host, port, backlog=_BACKLOG, ssl=self._ssl)
        self._port = self._server.sockets[0].getsockname()[1]

    def _connection(self) -> Connection:
        if self._admit is None:
            return Connection(self._owner)
        return _AdmittingConnection(self._owner, self._admit)


class _AdmittingConnection(Connection):
    """A connection that asks ``admit`` about each request once its head is complete."""

    def __init__(self, owner: ConnectionOwner, admit: Admit) -> None:
        super().__init__(owner)
        self._admit = admit
        self._reservation: Reservation | None = None

    def on_headers_complete(self) -> None:
        # Repeated headers joined as the base class joins them (it does it again, the same way).
        if self._repeated is not None:
            for key, values in self._repeated.items():
                self._headers[key] = ", ".join(values)
        # Before the base class answers "100 Continue": a refused body must not be invited.
        verdict = self._admit(
            self._parser.get_method().decode("latin-1"),
            b"".join(self._url).decode("latin-1"),
            Headers.lowered(self._headers),
        )
        if isinstance(verdict, HttpResponse):
            self._refuse(verdict)
            raise StopParsing
        self._reservation = verdict
        try:
            super().on_headers_complete()
        except BaseException:
            self._release()
            raise

    def on_message_complete(self) -> None:
        reservation, self._reservation = self._reservation, None
        queued = len(self._queue)
        try:
            super().on_message_complete()
        except BaseException:
            if reservation is not None:
                reservation.release()
            raise
        # The base class keeps the body's pieces until the next request begins: while this one
        # is held that would hold its bytes twice (the pieces and their join).
        self._body = []
        if reservation is None:
            return
        item = self._queue[-1][0] if len(self._queue) > queued else None
        if isinstance(item, HttpRequest):
            item.state[RESERVATION] = reservation
        else:
            reservation.release()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._release()

    def _release(self) -> None:
        reservation, self._reservation = self._reservation, None
        if reservation is not None:
            reservation.release()

    def _refuse(self, response: HttpResponse) -> None:
        """Queue ``response`` after the answers owed; the connection closes after it (as _reject)."""
        self._ignore_input = True
        self._continue_owed = False
        self._head_buffer.clear()
        self._queue.append((response, False, False))
        if self.task is None:
            self._start_worker()
