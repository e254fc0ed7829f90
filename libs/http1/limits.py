"""The bounds one HTTP/1.1 server puts on what a client may send and hold.

Design: every limit a client could otherwise push without end (body size, request line, header
size and count, time to send the head or the next body chunk, open connections) is one field
here, so the process that owns the server (the gateway's settings) sets them all in one place.
The defaults follow nginx and Envoy: an 8 KiB request line, 64 KiB and 100 headers in all, a
head that must arrive within seconds rather than minutes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one ``HttpServer`` accepts; a request past a limit is answered 4xx and the connection closes."""

    # Largest request body in bytes (413 beyond it).
    max_body_bytes: int
    # Seconds an idle keep-alive connection (no request in progress) stays open.
    keepalive_seconds: float = 75.0
    # Longest request target in bytes (414 beyond it): nginx's large_client_header_buffers is 8 KiB.
    max_request_line_bytes: int = 8 * 1024
    # Largest single header (name plus value) in bytes (431 beyond it); room for big cookies and
    # tokens, twice nginx's 8 KiB buffer.
    max_header_bytes: int = 16 * 1024
    # Largest sum of all header names and values of one request in bytes (431 beyond it).
    max_headers_bytes: int = 64 * 1024
    # Most header lines in one request (431 beyond it); Envoy's default is 100.
    max_headers: int = 100
    # Seconds the whole request head may take, from a new connection's start or from the first
    # byte of a later request (408 and close after it): a client trickling a byte at a time
    # cannot hold a connection for long.
    header_timeout_seconds: float = 10.0
    # Seconds the server waits for the next piece of a request body (408 and close after it).
    body_timeout_seconds: float = 30.0
    # Most open client connections; one more is answered 503 and closed at once.
    max_connections: int = 1024

    def __post_init__(self) -> None:
        for name in (
            "max_request_line_bytes",
            "max_header_bytes",
            "max_headers_bytes",
            "max_headers",
            "max_connections",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.max_body_bytes < 0:
            raise ValueError("max_body_bytes must be >= 0")
        for name in ("keepalive_seconds", "header_timeout_seconds", "body_timeout_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")

    @property
    def max_head_bytes(self) -> int:
        """Bytes a request head may take on the wire: request line, headers and their separators."""
        # Each header line adds ": " and CRLF to its name and value; the head ends with CRLF.
        return self.max_request_line_bytes + 2 + self.max_headers_bytes + 4 * self.max_headers + 2


# An answer to a request past a limit: its status and the reason given to the client.
Rejection = tuple[int, str]


class HeadBounds:
    """Counts one request head against ``HttpLimits`` as the parser reports its pieces.

    Each method returns the rejection (414 / 431) once a limit is passed, else None.
    """

    __slots__ = ("_count", "_limits", "_size", "_url")

    def __init__(self, limits: HttpLimits) -> None:
        self._limits = limits
        self._url = self._count = self._size = 0

    def reset(self) -> None:
        self._url = self._count = self._size = 0

    def unfinished(self, buffer: bytearray, from_line_start: bool) -> Rejection | None:
        """Check a head whose end has not arrived (``from_line_start``: the buffer holds it all)."""
        limits = self._limits
        line = limits.max_request_line_bytes
        if from_line_start and len(buffer) > line + 2 and buffer.find(b"\n", 0, line + 2) < 0:
            return 414, f"request line is longer than {line} bytes"
        if len(buffer) > limits.max_head_bytes:
            return 431, f"request headers are larger than {limits.max_headers_bytes} bytes"
        return None

    def url(self, piece: bytes) -> Rejection | None:
        self._url += len(piece)
        if self._url > self._limits.max_request_line_bytes:
            return 414, f"request target is longer than {self._limits.max_request_line_bytes} bytes"
        return None

    def header(self, name: bytes, value: bytes) -> Rejection | None:
        limits = self._limits
        size = len(name) + len(value)
        self._count += 1
        self._size += size
        if self._count > limits.max_headers:
            return 431, f"more than {limits.max_headers} request headers"
        if size > limits.max_header_bytes:
            # The name only, shortened: a value may be a credential, and neither is worth echoing.
            shown = name[:64].decode("latin-1")
            return 431, f"request header {shown!r} is larger than {limits.max_header_bytes} bytes"
        if self._size > limits.max_headers_bytes:
            return 431, f"request headers are larger than {limits.max_headers_bytes} bytes"
        return None
