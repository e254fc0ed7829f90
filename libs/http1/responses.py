"""How the HTTP/1.1 server writes answers: status lines, header blocks and error bodies.

Kept apart from the connection protocol so that the framing rules (who computes content-length,
when ``connection: close`` is sent) live in one small place.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Protocol

import structlog

from modelplane.libs.http1.messages import HttpResponse, StreamingResponse

log = structlog.get_logger(__name__)

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"
# Headers the server writes itself; a handler's own values for them are dropped.
_MANAGED_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
_STATUS_LINES = {int(s): f"HTTP/1.1 {int(s)} {s.phrase}\r\n" for s in HTTPStatus}


def status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} Unknown\r\n"


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> HttpResponse:
    """A JSON error answer ``{"error": message}``."""
    body = json.dumps({"error": message}).encode()
    return HttpResponse(status, body, {"content-type": "application/json", **(headers or {})})


def head(status: int, headers: dict[str, str], extra: str, close: bool, http10: bool) -> tuple[bytes, bool]:
    """The status line and header block, and whether the connection closes after this answer.

    ``extra`` holds the framing headers the server computed; a handler's own ``connection:
    close`` is honoured, its other framing headers are dropped.
    """
    parts = [status_line(status)]
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


def complete(response: HttpResponse, close: bool, http10: bool, head_only: bool) -> tuple[bytes, bool]:
    """The bytes of a complete answer (head and body) and whether the connection closes after it."""
    status = response.status
    body = response.body
    if status < 200 or status == 204 or status == 304:
        extra = ""
        body = b""
    else:
        extra = f"content-length: {len(body)}\r\n"
    data, close = head(status, response.headers, extra, close, http10)
    return (data if head_only or not body else data + body), close


async def aclose_quietly(chunks: AsyncIterator[bytes], path: str) -> None:
    """Close a streaming body's iterator, logging (not raising) what its cleanup raises."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        log.exception("stream_close_failed", path=path)


class StreamSink(Protocol):
    """The connection a streamed answer is written to."""

    @property
    def closed(self) -> bool: ...

    def write(self, data: bytes) -> None: ...

    async def writable(self) -> None:
        """Return once the transport takes more data."""


async def write_stream(
    sink: StreamSink, response: StreamingResponse, close: bool, http10: bool, head_only: bool, path: str
) -> bool:
    """Write a streamed answer chunk by chunk; True if the connection must close after it."""
    chunks = response.chunks
    # An HTTP/1.0 client knows no chunked encoding: the end of the body is the end of the connection.
    chunked = not http10
    framing = "transfer-encoding: chunked\r\n" if chunked else ""
    data, close = head(response.status, response.headers, framing, close or http10, False)
    sink.write(data)
    if head_only:
        await aclose_quietly(chunks, path)
        return close
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            await sink.writable()
            if sink.closed:
                break
            sink.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
    except Exception:
        # The status line is out already: all that is left is to cut the body short.
        log.exception("stream_crashed", path=path)
        await aclose_quietly(chunks, path)
        return True
    if sink.closed:
        await aclose_quietly(chunks, path)
        return True
    if chunked:
        sink.write(LAST_CHUNK)
    return close
