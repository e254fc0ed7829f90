"""The V2 REST API of the gateway against a real MLServer replica and a real NATS KV."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Mapping
from typing import Any

import aiohttp
import numpy as np
import pytest
import tritonclient.http.aio as triton_http
from aiohttp import web
from nats.js import JetStreamContext

from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion
from modelplane.services.gateway.app import App
from tests.gateway.conftest import (
    SERVER_MODEL_NAME,
    MLServerReplica,
    eventually,
    iris_route,
    put_route,
    start_gateway,
)


async def _infer(
    http: aiohttp.ClientSession, url: str, body: object, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_infer_returns_sklearn_predictions(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """A V2 infer request to /v2/models/iris/infer reaches iris_1 and returns its predictions."""
    status, body = await _infer(http, f"{gateway.http_url}/v2/models/iris/infer", mlserver.iris.v2_request(5))
    assert status == 200, body
    assert body["outputs"][0]["data"] == mlserver.iris.expected[:5].tolist()


async def test_tritonclient_http_infers_through_gateway(gateway: App, mlserver: MLServerReplica) -> None:
    """tritonclient's HTTP client (JSON tensors, no Content-Type) gets sklearn's predictions."""
    client = triton_http.InferenceServerClient(url=gateway.http_url.removeprefix("http://"))
    try:
        data = mlserver.iris.X[:4]
        inp = triton_http.InferInput("predict", list(data.shape), "FP64")
        inp.set_data_from_numpy(data, binary_data=False)
        out = triton_http.InferRequestedOutput("predict", binary_data=False)
        result = await client.infer("iris", inputs=[inp], outputs=[out])
        predictions = np.asarray(result.as_numpy("predict")).flatten()
        assert predictions.tolist() == mlserver.iris.expected[:4].tolist()
        assert await client.is_server_ready()
        assert await client.is_model_ready("iris")
    finally:
        await client.close()


async def test_seldon_model_header_names_the_model(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """The seldon-model header routes the request, whatever model the URL names."""
    status, body = await _infer(
        http,
        f"{gateway.http_url}/v2/models/anything/infer",
        mlserver.iris.v2_request(2),
        headers={"seldon-model": "iris"},
    )
    assert status == 200, body
    assert body["outputs"][0]["data"] == mlserver.iris.expected[:2].tolist()


async def test_version_path_routes_to_that_version_and_unknown_version_is_404(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """/versions/1/infer uses version 1; a version the route lacks is 404 naming it."""
    ok, body = await _infer(
        http, f"{gateway.http_url}/v2/models/iris/versions/1/infer", mlserver.iris.v2_request(1)
    )
    assert ok == 200, body
    missing, err = await _infer(
        http, f"{gateway.http_url}/v2/models/iris/versions/7/infer", mlserver.iris.v2_request(1)
    )
    assert missing == 404
    assert "version 7" in err["error"]


async def test_metadata_is_forwarded_and_server_metadata_is_ours(
    gateway: App, http: aiohttp.ClientSession
) -> None:
    """Model metadata comes from the replica; /v2 describes the gateway itself."""
    async with http.get(f"{gateway.http_url}/v2/models/iris") as resp:
        assert resp.status == 200
        meta = await resp.json()
    assert meta["name"] == "iris_1"
    async with http.get(f"{gateway.http_url}/v2/models/iris/versions/1") as resp:
        assert resp.status == 200
    async with http.get(f"{gateway.http_url}/v2") as resp:
        server = await resp.json()
    assert server["name"] == "modelplane"
    assert server["extensions"] == ["binary_tensor_data"]
    async with http.get(f"{gateway.http_url}/v2/models/iris/ready") as resp:
        assert resp.status == 200
        assert await resp.json() == {"name": "iris", "ready": True}
    async with http.get(f"{gateway.http_url}/v2/health/live") as resp:
        assert resp.status == 200


async def test_unknown_model_is_404_naming_it(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """A model without a route is 404 and the error names the model, for every model route."""
    status, body = await _infer(
        http, f"{gateway.http_url}/v2/models/nosuch/infer", mlserver.iris.v2_request(1)
    )
    assert status == 404
    assert "nosuch" in body["error"]
    for path in ("/v2/models/nosuch", "/v2/models/nosuch/ready"):
        async with http.get(f"{gateway.http_url}{path}") as resp:
            assert resp.status == 404
            assert "nosuch" in (await resp.json())["error"]


async def test_malformed_body_is_400_naming_the_field(gateway: App, http: aiohttp.ClientSession) -> None:
    """A body that is not a V2 request is refused before forwarding, naming what is wrong."""
    url = f"{gateway.http_url}/v2/models/iris/infer"
    status, body = await _infer(
        http, url, {"inputs": [{"name": "predict", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    )
    assert status == 400
    assert body["error"] == "inputs[0].datatype: is required"
    async with http.post(url, data=b"{not json", headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"].startswith("request body: invalid JSON")
    status, body = await _infer(http, url, {"inputs": []})
    assert status == 400
    assert body["error"] == "inputs: must not be empty"


async def test_route_without_endpoints_is_503_with_retry_after(
    gateway: App, js: JetStreamContext, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """A known model with no replica answers 503 with Retry-After (infer and ready)."""
    await put_route(js, Route(model="empty", versions=(RouteVersion(1, "empty_1", ()),)))

    async def routed() -> bool:
        return gateway.routes.get("empty") is not None

    await eventually(routed, 10, "route 'empty'")
    async with http.post(
        f"{gateway.http_url}/v2/models/empty/infer", json=mlserver.iris.v2_request(1)
    ) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
        error = (await resp.json())["error"]
        assert "empty" in error
        assert "waited 0.5s for a ready replica" in error
    async with http.get(f"{gateway.http_url}/v2/models/empty/ready") as resp:
        assert resp.status == 503


async def test_a_held_request_is_answered_once_a_replica_is_ready(
    js: JetStreamContext, nats_server: EmbeddedNats, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """A request for a model at zero replicas waits, and is answered when a replica comes up."""
    await put_route(js, Route(model="iris", versions=()))
    app = await start_gateway(nats_server, hold_seconds=30)
    try:

        async def routed() -> bool:
            return app.routes.get("iris") is not None

        await eventually(routed, 10, "route 'iris' without replicas")
        held = asyncio.create_task(
            _infer(http, f"{app.http_url}/v2/models/iris/infer", mlserver.iris.v2_request(2))
        )
        await asyncio.sleep(0.3)
        assert not held.done(), "the request must wait for a replica"
        await put_route(js, iris_route(mlserver))
        status, body = await asyncio.wait_for(held, 20)
        assert status == 200, body
        assert body["outputs"][0]["data"] == mlserver.iris.expected[:2].tolist()
    finally:
        await app.close()


async def test_route_changes_apply_without_restart(
    gateway: App, js: JetStreamContext, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """A route added to KV after start serves traffic; deleting it makes the model unknown."""
    await put_route(js, iris_route(mlserver, model="iris-two"))
    url = f"{gateway.http_url}/v2/models/iris-two/infer"

    async def served() -> bool:
        status, _ = await _infer(http, url, mlserver.iris.v2_request(1))
        return status == 200

    await eventually(served, 10, "iris-two to be served")
    from modelplane.libs import subjects

    kv = await js.key_value(subjects.KV_ROUTES)
    await kv.delete("iris-two")

    async def gone() -> bool:
        status, _ = await _infer(http, url, mlserver.iris.v2_request(1))
        return status == 404

    await eventually(gone, 10, "iris-two to be unknown")


async def test_unreachable_replica_is_skipped(
    gateway: App, js: JetStreamContext, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """With a dead replica in the route, every request still succeeds on the live one."""
    dead_port = free_port()
    dead = RouteEndpoint(
        server="mlserver",
        index=1,
        http_endpoint=f"127.0.0.1:{dead_port}",
        grpc_endpoint=f"127.0.0.1:{dead_port}",
    )
    await put_route(js, iris_route(mlserver, dead, model="iris-flaky"))

    async def routed() -> bool:
        return gateway.routes.get("iris-flaky") is not None

    await eventually(routed, 10, "route 'iris-flaky'")
    for _ in range(4):
        status, body = await _infer(
            http, f"{gateway.http_url}/v2/models/iris-flaky/infer", mlserver.iris.v2_request(1)
        )
        assert status == 200, body


async def test_replica_dropping_the_connection_mid_request_is_retried_elsewhere(
    gateway: App, js: JetStreamContext, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """A replica that reads the request and closes the connection without answering (a process
    killed mid-request) never fails the client: the request is sent to the next replica."""

    async def read_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        # Linger 0 turns the close into a TCP reset, as when the kernel closes a killed process's socket.
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(read_then_drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    dropping = RouteEndpoint(
        server="mlserver", index=1, http_endpoint=f"127.0.0.1:{port}", grpc_endpoint=f"127.0.0.1:{port}"
    )
    try:
        # The dropping replica first, so round robin reaches it on the very first request.
        await put_route(
            js,
            Route(
                model="iris-dropping",
                versions=(RouteVersion(1, SERVER_MODEL_NAME, (dropping, mlserver.endpoint())),),
            ),
        )

        async def routed() -> bool:
            return gateway.routes.get("iris-dropping") is not None

        await eventually(routed, 10, "route 'iris-dropping'")
        for _ in range(4):
            status, body = await _infer(
                http, f"{gateway.http_url}/v2/models/iris-dropping/infer", mlserver.iris.v2_request(1)
            )
            assert status == 200, body
    finally:
        server.close()
        await server.wait_closed()


async def _status_replica(status: int) -> tuple[web.AppRunner, RouteEndpoint, list[int]]:
    """A replica stand-in answering every request with ``status`` (counting them)."""
    hits: list[int] = []

    async def answer(request: web.Request) -> web.Response:
        hits.append(status)
        return web.json_response({"error": f"stand-in says {status}"}, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, RouteEndpoint("standin", status, f"127.0.0.1:{port}", f"127.0.0.1:{port}"), hits


@pytest.mark.parametrize(("status", "retried"), [(503, True), (502, True), (500, False), (400, False)])
async def test_only_answers_before_the_model_ran_are_retried(
    gateway: App,
    js: JetStreamContext,
    mlserver: MLServerReplica,
    http: aiohttp.ClientSession,
    status: int,
    retried: bool,
) -> None:
    """502/503/504 move on to another replica; 4xx and 500 (a model answered) go back as they are."""
    runner, standin, hits = await _status_replica(status)
    model = f"iris-{status}"
    try:
        # The stand-in first, so round robin reaches it on the first request.
        await put_route(
            js, Route(model, (RouteVersion(1, SERVER_MODEL_NAME, (standin, mlserver.endpoint())),))
        )

        async def routed() -> bool:
            return gateway.routes.get(model) is not None

        await eventually(routed, 10, f"route {model!r}")
        got, body = await _infer(
            http, f"{gateway.http_url}/v2/models/{model}/infer", mlserver.iris.v2_request(1)
        )
        assert hits == [status]
        if retried:
            assert got == 200, body
        else:
            assert (got, body) == (status, {"error": f"stand-in says {status}"})
    finally:
        await runner.cleanup()


async def test_a_model_timeout_bounds_its_own_requests(
    gateway: App, js: JetStreamContext, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """A route's timeout (the Model's timeoutSeconds) gives 504 for a replica slower than it."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"late": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    standin = RouteEndpoint("slow", 0, f"127.0.0.1:{port}", f"127.0.0.1:{port}")
    try:
        await put_route(
            js, Route("iris-slow", (RouteVersion(1, SERVER_MODEL_NAME, (standin,)),), timeout_seconds=0.3)
        )

        async def routed() -> bool:
            return gateway.routes.get("iris-slow") is not None

        await eventually(routed, 10, "route 'iris-slow'")
        got, body = await _infer(
            http, f"{gateway.http_url}/v2/models/iris-slow/infer", mlserver.iris.v2_request(1)
        )
        assert got == 504, body
        assert "did not answer within 0.3 s" in body["error"]
    finally:
        release.set()
        await runner.cleanup()


async def test_upstream_error_status_is_passed_through(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """When the replica answers with an error, the client gets the same status, type and body."""
    bad_tensor = {
        "inputs": [{"name": "predict", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}]
    }
    async with http.post(f"http://{mlserver.http}/v2/models/iris_1/infer", json=bad_tensor) as direct:
        expected = (direct.status, direct.headers["Content-Type"], await direct.read())
    async with http.post(f"{gateway.http_url}/v2/models/iris/infer", json=bad_tensor) as resp:
        got = (resp.status, resp.headers["Content-Type"], await resp.read())
    assert expected[0] >= 400
    assert got == expected


async def test_metrics_count_requests_by_model_and_code(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """/metrics shows inference requests counted per model, protocol and status code."""
    for _ in range(2):
        await _infer(http, f"{gateway.http_url}/v2/models/iris/infer", mlserver.iris.v2_request(1))
    await _infer(http, f"{gateway.http_url}/v2/models/ghost/infer", mlserver.iris.v2_request(1))
    async with http.get(f"{gateway.http_url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    assert 'modelplane_gateway_requests_total{code="200",model="iris",protocol="rest"} 2.0' in text
    assert 'modelplane_gateway_requests_total{code="404",model="unknown",protocol="rest"} 1.0' in text
    assert 'modelplane_gateway_request_duration_seconds_count{model="iris",protocol="rest"} 2.0' in text


async def test_unknown_path_is_json_404(gateway: App, http: aiohttp.ClientSession) -> None:
    """Paths outside the V2 API get a JSON error body too."""
    async with http.get(f"{gateway.http_url}/nope") as resp:
        assert resp.status == 404
        assert "error" in await resp.json()
