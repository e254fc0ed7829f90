"""Binary tensor bodies pass through unchanged to replicas whose server declares the extension.

No Triton server runs here, so the replica is a small stand-in speaking Triton's wire format: it
declares ``binary_tensor_data`` in ``GET /v2`` and answers an infer with its binary input doubled
as a binary output. The caller is the real tritonclient.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.http.aio as triton_http
from aiohttp import web
from nats.js import JetStreamContext

from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.errors import RetryableError
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion
from modelplane.services.gateway.app import App
from modelplane.services.gateway.replica_extensions import ReplicaExtensions
from tests.gateway.conftest import eventually, put_route, start_gateway


@dataclass
class TritonLike:
    endpoint: RouteEndpoint
    bodies: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    metadata_asked: int = 0


@pytest.fixture
async def triton_like() -> AsyncIterator[TritonLike]:
    """A stand-in replica that speaks the binary tensor extension (see the module docstring)."""
    port = free_port()
    replica = TritonLike(RouteEndpoint("triton", 0, f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}"))

    async def server_metadata(request: web.Request) -> web.Response:
        replica.metadata_asked += 1
        return web.json_response({"name": "triton", "version": "2", "extensions": ["binary_tensor_data"]})

    async def infer(request: web.Request) -> web.Response:
        body = await request.read()
        replica.bodies.append(({k.lower(): v for k, v in request.headers.items()}, body))
        length = int(request.headers["Inference-Header-Content-Length"])
        header = orjson.loads(body[:length])
        values = np.frombuffer(body[length:], dtype="<f8") * 2
        raw = values.astype("<f8").tobytes()
        answer = orjson.dumps(
            {
                "model_name": request.match_info["model"],
                "id": header.get("id", ""),
                "outputs": [
                    {
                        "name": "doubled",
                        "datatype": "FP64",
                        "shape": header["inputs"][0]["shape"],
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ],
            }
        )
        return web.Response(
            body=answer + raw,
            headers={
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(len(answer)),
            },
        )

    app = web.Application()
    app.router.add_get("/v2", server_metadata)
    app.router.add_post("/v2/models/{model}/infer", infer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield replica
    finally:
        await runner.cleanup()


@pytest.fixture
async def gateway_to_triton(
    js: JetStreamContext, nats_server: EmbeddedNats, triton_like: TritonLike
) -> AsyncIterator[App]:
    await put_route(js, Route("tensors", (RouteVersion(1, "tensors_1", (triton_like.endpoint,)),)))
    app = await start_gateway(nats_server)
    try:

        async def routed() -> bool:
            return app.routes.get("tensors") is not None

        await eventually(routed, 10, "route 'tensors'")
        yield app
    finally:
        await app.close()


async def test_binary_request_passes_through_to_a_server_with_the_extension(
    gateway_to_triton: App, triton_like: TritonLike
) -> None:
    """The replica gets the client's exact bytes and header; the client decodes the replica's
    binary answer; the server metadata is asked once for many requests."""
    client = triton_http.InferenceServerClient(url=gateway_to_triton.http_url.removeprefix("http://"))
    try:
        data = np.arange(12, dtype="<f8").reshape(3, 4)
        for _ in range(3):
            inp = triton_http.InferInput("x", list(data.shape), "FP64")
            inp.set_data_from_numpy(data, binary_data=True)
            out = triton_http.InferRequestedOutput("doubled", binary_data=True)
            result = await client.infer("tensors", inputs=[inp], outputs=[out], request_id="r-1")
            assert np.asarray(result.as_numpy("doubled")).tolist() == (data * 2).tolist()
            assert result.get_response()["id"] == "r-1"
    finally:
        await client.close()
    assert triton_like.metadata_asked == 1
    headers, body = triton_like.bodies[-1]
    length = int(headers["inference-header-content-length"])
    assert body[length:] == data.tobytes()  # the tensor bytes, untouched
    assert orjson.loads(body[:length])["inputs"][0]["parameters"]["binary_data_size"] == data.nbytes


async def test_extensions_are_asked_once_per_address_and_failures_retried() -> None:
    """Concurrent first requests share one question; an unreachable server declares nothing and
    is asked again after the retry delay."""
    now = [0.0]
    asked: list[str] = []
    gate = asyncio.Event()
    failing = {"down:1"}

    async def ask(endpoint: RouteEndpoint) -> tuple[int, bytes]:
        asked.append(endpoint.http_endpoint)
        await gate.wait()
        if endpoint.http_endpoint in failing:
            raise RetryableError("refused")
        return 200, b'{"extensions": ["binary_tensor_data", 7]}'

    extensions = ReplicaExtensions(ask, ttl_seconds=100, retry_seconds=5, clock=lambda: now[0])
    up = RouteEndpoint("s", 0, "up:1", "")
    down = RouteEndpoint("s", 1, "down:1", "")
    waiting: list[Any] = [
        asyncio.ensure_future(extensions.supports(up, "binary_tensor_data")) for _ in range(5)
    ]
    waiting.append(asyncio.ensure_future(extensions.supports(down, "binary_tensor_data")))
    gate.set()
    assert await asyncio.gather(*waiting) == [True] * 5 + [False]
    assert sorted(asked) == ["down:1", "up:1"]
    now[0] = 6.0
    assert await extensions.supports(up, "binary_tensor_data")  # still fresh: not asked
    failing.clear()
    assert await extensions.supports(down, "binary_tensor_data")  # retried after 5 s
    assert sorted(asked) == ["down:1", "down:1", "up:1"]
