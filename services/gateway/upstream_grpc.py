"""Calls to replicas' V2 gRPC servers over one cached grpc.aio channel per endpoint.

gRPC reports "could not connect" as UNAVAILABLE, which is turned into
``UpstreamUnreachableError`` so the handler tries the next replica. Every other status the
replica returns is raised as the ``grpc.aio.AioRpcError`` it is, for the servicer to pass on to
the client with its code and details.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import grpc

from modelplane.libs.dataplane.handler import ModelNotResidentError, UpstreamUnreachableError
from modelplane.libs.errors import RetryableError
from modelplane.libs.routes import RouteEndpoint
from modelplane.proto import open_inference_pb2 as oip
from modelplane.proto import open_inference_pb2_grpc as oip_grpc

Metadata = Sequence[tuple[str, str]]


class GrpcUpstream:
    """Owns the channels to replicas; ``close()`` closes them all."""

    def __init__(self, timeout_seconds: float, max_message_bytes: int) -> None:
        self._timeout = timeout_seconds
        self._options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, oip_grpc.GRPCInferenceServiceStub] = {}
        self._closed = False

    def _stub(self, endpoint: RouteEndpoint) -> oip_grpc.GRPCInferenceServiceStub:
        if self._closed:
            raise RetryableError("gateway is shutting down")
        stub = self._stubs.get(endpoint.grpc_endpoint)
        if stub is None:
            # Channels are kept for endpoints that left the routes too: they hold no connection
            # once idle, and a replica that comes back reuses its channel.
            channel = grpc.aio.insecure_channel(endpoint.grpc_endpoint, options=self._options)
            self._channels[endpoint.grpc_endpoint] = channel
            stub = oip_grpc.GRPCInferenceServiceStub(channel)
            self._stubs[endpoint.grpc_endpoint] = stub
        return stub

    async def _call(
        self,
        endpoint: RouteEndpoint,
        method: Any,
        request: Any,
        metadata: Metadata,
        timeout: float | None = None,
    ) -> Any:
        try:
            return await method(
                request, timeout=self._timeout if timeout is None else timeout, metadata=tuple(metadata)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                raise UpstreamUnreachableError(
                    f"replica {endpoint.replica} at {endpoint.grpc_endpoint}: {exc.details()}"
                ) from exc
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                # The replica lacks a model its route lists: maybe evicted (the handler reloads).
                raise ModelNotResidentError(
                    f"replica {endpoint.replica}: {exc.details()}", partial(_reraise, exc)
                ) from exc
            raise

    async def model_infer(
        self,
        endpoint: RouteEndpoint,
        request: oip.ModelInferRequest,
        metadata: Metadata,
        timeout: float | None = None,
    ) -> oip.ModelInferResponse:
        """``timeout``: this call's seconds (the model's own), else the gateway's default."""
        response: oip.ModelInferResponse = await self._call(
            endpoint, self._stub(endpoint).ModelInfer, request, metadata, timeout
        )
        return response

    async def model_metadata(
        self, endpoint: RouteEndpoint, request: oip.ModelMetadataRequest, metadata: Metadata
    ) -> oip.ModelMetadataResponse:
        response: oip.ModelMetadataResponse = await self._call(
            endpoint, self._stub(endpoint).ModelMetadata, request, metadata
        )
        return response

    async def close(self) -> None:
        self._closed = True
        channels, self._channels = self._channels, {}
        self._stubs = {}
        for channel in channels.values():
            await channel.close()


def _reraise(error: grpc.aio.AioRpcError) -> None:
    """The replica's own NOT_FOUND, passed on to the client as it is."""
    raise error
