"""Calls to replicas' REST servers over the gateway's pooled HTTP/1.1 client (http1/client.py).

Failures are sorted by what the caller may do next: ``UpstreamUnreachableError`` when the replica
never answered (connect refused/reset, connection dropped before a response: try another
replica), ``DeadlineError`` when it did not answer in time, ``RetryableError`` for an answer that
broke off. A response with any status is a ``HttpReply``, never an exception.

``stream`` is the same call for answers that must not be buffered (OpenAI ``"stream": true``
server-sent events): it yields an ``HttpStream`` whose body is read chunk by chunk as the
replica sends it. A stream is bounded by the time between two chunks (``timeout_seconds``), not
by its total length, since a long generation is not a stuck one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

from modelplane.libs.dataplane.handler import (
    ModelNotResidentError,
    ReplicaBusyError,
    UpstreamUnreachableError,
)
from modelplane.libs.errors import DeadlineError, RetryableError
from modelplane.libs.http1.client import (
    ClientStream,
    HttpClient,
    UpstreamConnectError,
    UpstreamProtocolError,
)
from modelplane.libs.http1.messages import Headers
from modelplane.libs.routes import RouteEndpoint
from modelplane.libs.telemetry import inject_context

DEFAULT_CONTENT_TYPE = "application/json"
# The request id a client may send; it is passed on to the replica and echoed in the answer.
REQUEST_ID_HEADER = "x-request-id"


def forwarded_headers(incoming: Mapping[str, str]) -> dict[str, str]:
    """The headers a JSON call to a replica carries: content type, the client's request id,
    and the current trace context."""
    headers = {"content-type": DEFAULT_CONTENT_TYPE}
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
    # Every header of the answer (binary tensor pass-through reads its own from here).
    headers: Headers = field(default_factory=Headers)


class HttpStream:
    """A replica's answer whose body has not been read yet (see ``HttpUpstream.stream``)."""

    def __init__(self, stream: ClientStream, endpoint: RouteEndpoint) -> None:
        self._stream = stream
        self._endpoint = endpoint
        self.status = stream.status
        self.content_type = stream.headers.get("content-type") or DEFAULT_CONTENT_TYPE

    async def read(self) -> bytes:
        """The whole body."""
        with _mapped_errors(self._endpoint, "answering"):
            return await self._stream.read()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as the replica sends it; RetryableError/DeadlineError if it breaks off."""
        with _mapped_errors(self._endpoint, "streaming"):
            async for chunk in self._stream.chunks():
                yield chunk


@contextlib.contextmanager
def _mapped_errors(endpoint: RouteEndpoint, doing: str) -> Iterator[None]:
    """Errors after the replica started answering: it cannot be retried elsewhere any more."""
    try:
        yield
    except TimeoutError as exc:
        raise DeadlineError(f"replica {endpoint.replica} stalled while {doing}") from exc
    except (UpstreamProtocolError, UpstreamConnectError) as exc:
        raise RetryableError(f"replica {endpoint.replica} failed while {doing}: {exc}") from exc


class HttpUpstream:
    """One pooled HTTP/1.1 client shared by every forwarded REST call."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._client: HttpClient | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = HttpClient()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

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
        client = self._client
        if client is None:
            raise RetryableError("gateway is shutting down")
        limit = self._timeout if timeout is None else timeout
        try:
            reply = await client.request(
                method, endpoint.http_endpoint, path, headers=headers, body=body, timeout=limit
            )
        except UpstreamConnectError as exc:
            # Refused, reset or closed before any answer (e.g. the replica's process was killed
            # mid-request): nothing was answered, so the handler may try another replica.
            raise UpstreamUnreachableError(f"replica {endpoint.replica}: {exc}") from exc
        except TimeoutError as exc:
            raise DeadlineError(f"replica {endpoint.replica} did not answer within {limit:g} s") from exc
        except UpstreamProtocolError as exc:
            raise RetryableError(f"replica {endpoint.replica} failed: {exc}") from exc
        return HttpReply(
            status=reply.status,
            body=reply.body,
            content_type=reply.headers.get("content-type") or DEFAULT_CONTENT_TYPE,
            headers=reply.headers,
        )

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
        client = self._client
        if client is None:
            raise RetryableError("gateway is shutting down")
        opened = client.stream(
            method, endpoint.http_endpoint, path, headers=headers, body=body, timeout=self._timeout
        )
        async with contextlib.AsyncExitStack() as stack:
            try:
                stream = await stack.enter_async_context(opened)
            except UpstreamConnectError as exc:
                # Nothing was answered: the handler may try another replica.
                raise UpstreamUnreachableError(f"replica {endpoint.replica}: {exc}") from exc
            except TimeoutError as exc:
                raise DeadlineError(
                    f"replica {endpoint.replica} did not answer within {self._timeout:g} s"
                ) from exc
            except UpstreamProtocolError as exc:
                raise RetryableError(f"replica {endpoint.replica} failed: {exc}") from exc
            yield HttpStream(stream, endpoint)


# Replica answers retried on another replica (Envoy's "gateway-error" policy): the request did
# not run on a model, or the replica said it cannot take it now. 4xx and 500 are never retried.
RETRIED_STATUSES = frozenset(
    {HTTPStatus.BAD_GATEWAY, HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.GATEWAY_TIMEOUT}
)


def checked_reply(endpoint: RouteEndpoint, server_model_name: str, reply: HttpReply) -> HttpReply:
    """``reply``, or the error that tells the handler to reload the model or to try another
    replica (``GatewayHandler.forward`` acts on both)."""
    if reply.status == HTTPStatus.NOT_FOUND:
        # The replica lacks a model its route lists: maybe evicted (the handler reloads).
        raise ModelNotResidentError(
            f"replica {endpoint.replica} has no model {server_model_name}", lambda: reply
        )
    if reply.status in RETRIED_STATUSES:
        # Overloaded or in trouble before the model ran: another replica may answer.
        raise ReplicaBusyError(f"replica {endpoint.replica} answered {reply.status}", lambda: reply)
    return reply
