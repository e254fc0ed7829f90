"""The gateway's HTTP/1.1 server: one listening socket, one ``Connection`` protocol per client.

Design: the server owns the listener and the set of open connections (``ConnectionOwner``); each
connection parses, bounds and answers its own requests (connection.py), and answers are framed
by responses.py. Every bound a client could push (sizes, deadlines, connections) comes from one
``HttpLimits``. Optional: TLS on the listener (``ssl``), and an ``admit`` hook that sees each
request head before its body is read and may refuse it unread (connection.py). ``stop()`` closes the listener and idle connections at once, lets requests in
the handlers finish for a grace period and then aborts what is left.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_

import structlog

from modelplane.libs.http1.answering import ConnectionOwner, RequestHandler
from modelplane.libs.http1.connection import Connection
from modelplane.libs.http1.limits import HttpLimits
from modelplane.libs.http1.messages import Admit, RequestHead

__all__ = ["Admit", "HttpLimits", "HttpServer", "RequestHandler", "RequestHead"]

log = structlog.get_logger(__name__)

# listen(2) backlog: a burst of new connections must not be refused while the loop is busy.
_BACKLOG = 1024
# How long stop() waits for handlers it cancelled after the grace period.
_CANCEL_WAIT_SECONDS = 1.0


class HttpServer:
    """Serves HTTP/1.1 (and 1.0) on one listening address by calling ``handler`` per request.

    ``ssl``: serve TLS with this server context. ``admit``: called with each request's head
    before any body byte is read; a response it returns is the answer, the body is never read.
    """

    def __init__(
        self,
        handler: RequestHandler,
        limits: HttpLimits,
        *,
        ssl: ssl_.SSLContext | None = None,
        admit: Admit | None = None,
    ) -> None:
        self._owner = ConnectionOwner(handler, limits, admit)
        self._ssl = ssl
        self._server: asyncio.Server | None = None
        self._port = 0
        self._stopped: asyncio.Event | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (port 0 picks a free one, see ``port``), over TLS with ``ssl``."""
        if self._server is not None or self._owner.stopping:
            raise RuntimeError("HttpServer.start() may be called once")
        loop = asyncio.get_running_loop()
        if self._ssl is None:
            self._server = await loop.create_server(self._connection, host, port, backlog=_BACKLOG)
        else:
            # The handshake comes before the head's own deadline starts (the protocol sees the
            # connection once it is done), so it gets the same bound instead of asyncio's 60 s.
            self._server = await loop.create_server(
                self._connection,
                host,
                port,
                backlog=_BACKLOG,
                ssl=self._ssl,
                ssl_handshake_timeout=self._owner.limits.header_timeout_seconds,
            )
        self._port = self._server.sockets[0].getsockname()[1]

    @property
    def port(self) -> int:
        """The bound port (0 before ``start()``)."""
        return self._port

    @property
    def connections(self) -> int:
        """Open client connections."""
        return len(self._owner.connections)

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop accepting, close idle connections, let running requests finish, then abort."""
        if self._stopped is not None:
            await self._stopped.wait()
            return
        self._stopped = asyncio.Event()
        self._owner.stopping = True
        try:
            await self._shut_down(grace_seconds)
        except Exception:
            log.exception("http_server_stop_failed")
        finally:
            self._stopped.set()

    async def _shut_down(self, grace_seconds: float) -> None:
        connections = self._owner.connections
        if self._server is not None:
            self._server.close()
        for connection in list(connections):
            connection.close_if_idle()
        busy = self._busy_tasks()
        if busy:
            await asyncio.wait(busy, timeout=grace_seconds)
        for connection in list(connections):
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
        return {c.task for c in self._owner.connections if c.task is not None}

    def _connection(self) -> Connection:
        return Connection(self._owner)
