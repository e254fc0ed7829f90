"""The plain values the gateway's HTTP/1.1 server and client exchange with the code around them.

The gateway serves and forwards every REST request itself (server.py, client.py) instead of going
through aiohttp: a proxy pays for each layer twice per request, and the benchmark showed that
aiohttp's request/response machinery cost more CPU than the model server's own answer. These
types are deliberately small: what a route reads (method, decoded path, query, headers, body)
and what it answers (status, headers, body or a stream of chunks).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

import structlog

log = structlog.get_logger(__name__)


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive header mapping (names are stored lower-case).

    Repeated headers are joined with ``", "`` as RFC 9110 allows for list-valued fields.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        merged: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            known = merged.get(key)
            merged[key] = value if known is None else f"{known}, {value}"
        self._items = merged

    @classmethod
    def lowered(cls, merged: dict[str, str]) -> Headers:
        """Headers from a dict whose keys are already lower-case and unique (parsers build it)."""
        headers = cls.__new__(cls)
        headers._items = merged
        return headers

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._items.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(slots=True)
class HttpRequest:
    """One complete request as the server received it (the body is read in full first)."""

    method: str
    # The request target's path as sent (percent-encoded) and its query string ("" when none).
    raw_path: str
    query: str
    headers: Headers
    body: bytes
    # Per-request values the routes and their middleware share (route name, model label, ...).
    state: dict[str, object] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The path with percent-escapes decoded (what routes match on)."""
        return unquote(self.raw_path)


@dataclass(slots=True)
class RequestHead:
    """A request whose head is complete and whose body is not read yet: what ``Admit`` sees.

    ``state`` becomes the request's ``state``, so a value the hook puts there (a reservation)
    travels with the request. ``on_finish`` callbacks run once when the server is done with the
    request: after its handler returned, or when the request never reaches it (the client left
    mid-body, the body broke a limit, the connection was aborted), so what the hook took is
    always given back.
    """

    method: str
    raw_path: str
    query: str
    headers: Headers
    state: dict[str, object] = field(default_factory=dict)
    _finishers: list[Callable[[], None]] | None = field(default=None, init=False, repr=False)

    def on_finish(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when the server is done with this request."""
        if self._finishers is None:
            self._finishers = []
        self._finishers.append(callback)

    def finish(self) -> None:
        """Run the ``on_finish`` callbacks (idempotent; one that raises is logged, not raised)."""
        finishers, self._finishers = self._finishers, None
        for callback in finishers or ():
            try:
                callback()
            except Exception:
                log.exception("request_finisher_failed", path=self.raw_path)


@dataclass(slots=True)
class HttpResponse:
    """A complete answer. The server adds ``Content-Length`` (and connection headers) itself."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StreamingResponse:
    """An answer whose body is sent chunk by chunk as ``chunks`` yields (chunked encoding).

    Each chunk is written as soon as it is yielded: server-sent events reach the client
    unbuffered. The server closes ``chunks`` (``aclose``) if the client goes away.
    """

    status: int
    chunks: AsyncIterator[bytes]
    headers: dict[str, str] = field(default_factory=dict)


Response = HttpResponse | StreamingResponse

# Looked at once a request's head is complete, before any byte of its body is read: None reads
# the request, a response refuses it unread (no "100 Continue" is sent; the connection closes).
Admit = Callable[[RequestHead], Response | None]
