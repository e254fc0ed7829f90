"""Trace context flows through the gateway: an incoming traceparent continues to the replica."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable

import aiohttp
import grpc
import pytest
from aiohttp import web
from nats.js import JetStreamContext

from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion
from modelplane.proto import open_inference_pb2 as oip
from modelplane.proto import open_inference_pb2_grpc as oip_grpc
from modelplane.services.gateway.app import App
from tests.gateway.conftest import eventually, put_route, start_gateway

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class RecordingServicer(oip_grpc.GRPCInferenceServiceServicer):
    """A replica stand-in that remembers the metadata of each ModelInfer call."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    async def ModelInfer(
        self, request: oip.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> oip.ModelInferResponse:
        self.metadata.append({k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)})
        return oip.ModelInferResponse(model_name=request.model_name)

    # The rest of the service is not needed: keep the generated UNIMPLEMENTED answers.

    def ServerLive(
        self, request: oip.ServerLiveRequest, context: grpc.aio.ServicerContext
    ) -> oip.ServerLiveResponse | Awaitable[oip.ServerLiveResponse]:
        return super().ServerLive(request, context)

    def ServerReady(
        self, request: oip.ServerReadyRequest, context: grpc.aio.ServicerContext
    ) -> oip.ServerReadyResponse | Awaitable[oip.ServerReadyResponse]:
        return super().ServerReady(request, context)

    def ModelReady(
        self, request: oip.ModelReadyRequest, context: grpc.aio.ServicerContext
    ) -> oip.ModelReadyResponse | Awaitable[oip.ModelReadyResponse]:
        return super().ModelReady(request, context)

    def ServerMetadata(
        self, request: oip.ServerMetadataRequest, context: grpc.aio.ServicerContext
    ) -> oip.ServerMetadataResponse | Awaitable[oip.ServerMetadataResponse]:
        return super().ServerMetadata(request, context)

    def ModelMetadata(
        self, request: oip.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> oip.ModelMetadataResponse | Awaitable[oip.ModelMetadataResponse]:
        return super().ModelMetadata(request, context)


class Replica:
    def __init__(
        self, http_port: int, grpc_port: int, servicer: RecordingServicer, seen: list[dict[str, str]]
    ):
        self.endpoint = RouteEndpoint("fake", 0, f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}")
        self.servicer = servicer
        self.http_headers = seen


@pytest.fixture
async def replica() -> AsyncIterator[Replica]:
    """A recording V2 replica (aiohttp REST + grpc.aio) on free ports."""
    seen: list[dict[str, str]] = []

    async def infer(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"model_name": request.match_info["model"], "outputs": []})

    app = web.Application()
    app.router.add_post("/v2/models/{model}/infer", infer)
    runner = web.AppRunner(app)
    await runner.setup()
    http_port, grpc_port = free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    server = grpc.aio.server()
    servicer = RecordingServicer()
    oip_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await server.start()
    try:
        yield Replica(http_port, grpc_port, servicer, seen)
    finally:
        await server.stop(0)
        await runner.cleanup()


@pytest.fixture
async def traced_gateway(
    js: JetStreamContext, nats_server: EmbeddedNats, replica: Replica
) -> AsyncIterator[App]:
    await put_route(js, Route("fake", (RouteVersion(1, "fake_1", (replica.endpoint,)),)))
    app = await start_gateway(nats_server)
    try:

        async def routed() -> bool:
            return app.routes.get("fake") is not None

        await eventually(routed, 10, "route 'fake'")
        yield app
    finally:
        await app.close()


_BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]}


async def test_rest_continues_incoming_trace_to_replica(traced_gateway: App, replica: Replica) -> None:
    """The replica receives a traceparent in the caller's trace, plus the caller's request id."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{traced_gateway.http_url}/v2/models/fake/infer",
            json=_BODY,
            headers={"traceparent": TRACEPARENT, "x-request-id": "req-1"},
        ) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["x-request-id"] == "req-1"
    (headers,) = replica.http_headers
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered["traceparent"].split("-")[1] == TRACE_ID
    assert lowered["x-request-id"] == "req-1"


async def test_rest_without_incoming_trace_still_sends_one(traced_gateway: App, replica: Replica) -> None:
    """A request without trace context starts a trace whose context reaches the replica."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{traced_gateway.http_url}/v2/models/fake/infer", json=_BODY) as resp,
    ):
        assert resp.status == 200
    (headers,) = replica.http_headers
    assert "traceparent" in {k.lower() for k in headers}


async def test_grpc_continues_incoming_trace_to_replica(traced_gateway: App, replica: Replica) -> None:
    """gRPC metadata to the replica carries a traceparent in the caller's trace."""
    async with grpc.aio.insecure_channel(traced_gateway.grpc_target) as channel:
        stub = oip_grpc.GRPCInferenceServiceStub(channel)
        request = oip.ModelInferRequest(
            model_name="fake",
            inputs=[oip.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[1])],
        )
        response = await stub.ModelInfer(request, metadata=(("traceparent", TRACEPARENT),))
    assert response.model_name == "fake_1"
    (metadata,) = replica.servicer.metadata
    assert metadata["traceparent"].split("-")[1] == TRACE_ID
