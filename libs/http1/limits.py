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
