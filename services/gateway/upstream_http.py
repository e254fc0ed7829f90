"""Calls to replicas' V2 REST servers over one keep-alive aiohttp session.

Failures are sorted by what the caller may do next: ``UpstreamUnreachableError`` when the replica
never answered (connect refused/reset, connection dropped before a response: try another
replica), ``DeadlineError`` when it did not answer in time, ``RetryableError`` for any other
transport failure. A response with any status is a ``HttpReply``, never an exception.

``stream`` is the same call for answers that must not be buffered (OpenAI ``"stream": true``
server-sent events): it yields an ``HttpStream`` whose body is read chunk by chunk as the
replica sends it. A stream is bounded by the time between two chunks (``timeout_seconds``), not
by its total length, since a long generation is not a stuck one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass

import aiohttp

from modelplane.libs.errors import DeadlineError, RetryableError
from modelplane.libs.routes import RouteEndpoint
from modelplane.libs.telemetry import inject_context
from modelplane.services.gateway.handler import UpstreamUnreachableError

DEFAULT_CONTENT_TYPE = "application/json"
# The request id a client may send; it is passed on to the replica and echoed in the answer.
REQUEST_ID_HEADER = "x-request-id"


def forwarded_headers(incoming: Mapping[str, str]) -> dict[str, str]:
    """The headers a JSON call to a replica carries: content type, the client's request id,
    and the current trace context."""
    headers = {"Content-Type": DEFAULT_CONTENT_TYPE}
    request_id = incoming.get(REQUEST_ID_HEADER)
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    inject_context(headers)
    return headers


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes
    content_type: str


class HttpStream:
    """A replica's answer whose body has not been read yet (see ``HttpUpstream.stream``)."""

    def __init__(self, response: aiohttp.ClientResponse, endpoint: RouteEndpoint) -> None:
        self._response = response
        self._endpoint = endpoint
        self.status = response.status
        self.content_type = response.headers.get("Content-Type", DEFAULT_CONTENT_TYPE)

    async def read(self) -> bytes:
        """The whole body."""
        with _mapped_errors(self._endpoint, "answering"):
            return await self._response.read()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as the replica sends it; RetryableError/DeadlineError if it breaks off."""
        with _mapped_errors(self._endpoint, "streaming"):
            async for chunk in self._response.content.iter_any():
                yield chunk


@contextlib.contextmanager
def _mapped_errors(endpoint: RouteEndpoint, doing: str) -> Iterator[None]:
    """Errors after the replica started answering: it cannot be retried elsewhere any more."""
    try:
        yield
    except TimeoutError as exc:  # aiohttp's timeouts subclass it
        raise DeadlineError(f"replica {endpoint.replica} stalled while {doing}") from exc
    except aiohttp.ClientError as exc:
        raise RetryableError(f"replica {endpoint.replica} failed while {doing}: {exc}") from exc


class HttpUpstream:
    """One aiohttp ClientSession shared by every forwarded REST call."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        # Streams: connect and each read bounded, the whole answer not.
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_seconds, sock_read=timeout_seconds
        )
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            # No per-host limit: concurrency is bounded by the clients, and a low limit would
            # queue requests inside the gateway where nobody sees them.
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=False
            )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def request(
        self,
        method: str,
        endpoint: RouteEndpoint,
        path: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeout: float | None = None,
    ) -> HttpReply:
        """``timeout``: this call's seconds (the model's own), else the gateway's default."""
        if self._session is None:
            raise RetryableError("gateway is shutting down")
        url = f"http://{endpoint.http_endpoint}{path}"
        limit = self._timeout if timeout is None else aiohttp.ClientTimeout(total=timeout)
        try:
            async with self._session.request(
                method, url, data=body, headers=dict(headers), timeout=limit
            ) as resp:
                payload = await resp.read()
                return HttpReply(
                    status=resp.status,
                    body=payload,
                    content_type=resp.headers.get("Content-Type", DEFAULT_CONTENT_TYPE),
                )
        except aiohttp.ClientConnectionError as exc:
            # Refused, reset or closed before any answer (e.g. the replica's process was killed
            # mid-request): nothing was answered, so the handler may try another replica.
            raise UpstreamUnreachableError(
                f"replica {endpoint.replica} at {endpoint.http_endpoint}: {exc}"
            ) from exc
        except TimeoutError as exc:  # aiohttp's timeouts subclass it
            raise DeadlineError(
                f"replica {endpoint.replica} did not answer within {limit.total:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise RetryableError(f"replica {endpoint.replica} failed: {exc}") from exc

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        endpoint: RouteEndpoint,
        path: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> AsyncIterator[HttpStream]:
        """``request`` with the body left unread: yields once the status and headers are in."""
        if self._session is None:
            raise RetryableError("gateway is shutting down")
        url = f"http://{endpoint.http_endpoint}{path}"
        try:
            response = await self._session.request(
                method, url, data=body, headers=dict(headers), timeout=self._stream_timeout
            )
        except aiohttp.ClientConnectionError as exc:
            # Nothing was answered: the handler may try another replica.
            raise UpstreamUnreachableError(
                f"replica {endpoint.replica} at {endpoint.http_endpoint}: {exc}"
            ) from exc
        except TimeoutError as exc:
            raise DeadlineError(
                f"replica {endpoint.replica} did not answer within {self._stream_timeout.sock_read} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise RetryableError(f"replica {endpoint.replica} failed: {exc}") from exc
        try:
            yield HttpStream(response, endpoint)
        finally:
            response.release()
