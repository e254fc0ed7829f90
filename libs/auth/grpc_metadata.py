"""Sending a bearer token on gRPC calls: per-call metadata, or interceptors for a whole
``grpc.aio`` channel (services calling the api, tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from modelplane.libs.auth.bearer import AUTHORIZATION, authorization

Metadata = tuple[tuple[str, str], ...]


def bearer_metadata(token: str | None) -> Metadata:
    """The call metadata carrying ``token`` (empty without one)."""
    return ((AUTHORIZATION, authorization(token)),) if token else ()


def _with_token(details: grpc.aio.ClientCallDetails, metadata: Metadata) -> grpc.aio.ClientCallDetails:
    merged = tuple(details.metadata or ()) + metadata
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        grpc.aio.Metadata(*merged),
        details.credentials,
        details.wait_for_ready,
    )


class _UnaryUnaryBearer(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(_with_token(client_call_details, self._metadata), request)


class _UnaryStreamBearer(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata

    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        return await continuation(_with_token(client_call_details, self._metadata), request)


def bearer_interceptors(token: str | None) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors that add ``token`` to every unary and server-streaming call of a channel."""
    if not token:
        return []
    metadata = bearer_metadata(token)
    return [_UnaryUnaryBearer(metadata), _UnaryStreamBearer(metadata)]
