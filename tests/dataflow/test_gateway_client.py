"""GatewayClient against a real MLServer (the gateway speaks the same V2 REST) and an aiohttp server."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp import web

from modelplane.libs.embedded_nats import free_port
from modelplane.libs.resources.types import GraphNode, GraphStep, InferenceGraphSpec
from modelplane.services.dataflow.errors import StepCallError
from modelplane.services.dataflow.gateway_client import GatewayClient
from modelplane.services.dataflow.graph.run import GraphRunner
from tests.gateway.conftest import poll_until
from tests.helpers.iris import IrisModel
from tests.helpers.mlserver import iris_repository, spawn_mlserver
from tests.helpers.processes import stop_process_group

MODEL = "iris"
MLSERVER_START_TIMEOUT = 90.0
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclass(frozen=True)
class IrisServer:
    url: str
    iris: IrisModel


def _ready(http: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{http}/v2/models/{MODEL}/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.fixture(scope="module")
def iris_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisServer]:
    """One MLServer process serving the iris model as ``iris``."""
    root = tmp_path_factory.mktemp("gateway-client")
    (root / "models").mkdir()
    repository = iris_repository(root / "models", MODEL)
    proc = spawn_mlserver(repository.models, root / "mlserver.log")
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"mlserver exited with {proc.returncode}: {(root / 'mlserver.log').read_text()}")
            return _ready(repository.http)

        poll_until(ready, MLSERVER_START_TIMEOUT, "MLServer to load iris")
        yield IrisServer(f"http://{repository.http}", repository.iris)
    finally:
        stop_process_group(proc, timeout=20)


@dataclass
class Fake:
    url: str
    seen: list[dict[str, Any]]


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    """An aiohttp server answering V1/V2 calls, errors and never; it records what it got."""
    seen: list[dict[str, Any]] = []
    never = asyncio.Event()

    async def record(request: web.Request) -> dict[str, Any]:
        entry = {
            "path": request.path_qs,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": await request.read(),
        }
        seen.append(entry)
        return entry

    async def v2(request: web.Request) -> web.Response:
        entry = await record(request)
        model = request.match_info["model"]
        if model == "fails":
            return web.json_response({"error": "model fails exploded"}, status=500)
        if model == "plain":
            return web.Response(text="upstream busy", status=503)
        if model == "html":
            return web.Response(text="<html></html>", status=200)
        if model == "slow":
            await never.wait()
        return web.json_response({"model_name": model, "echo": orjson.loads(entry["body"])})

    async def v1(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"predictions": [1]})

    async def score(request: web.Request) -> web.Response:
        entry = await record(request)
        return web.json_response({"scored": orjson.loads(entry["body"])}, status=201)

    app = web.Application()
    app.router.add_post("/v2/models/{model}/infer", v2)
    app.router.add_post("/v1/models/{model}:predict", v1)
    app.router.add_post("/score", score)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield Fake(f"http://127.0.0.1:{port}", seen)
    finally:
        never.set()
        await runner.cleanup()


@pytest.fixture
async def client(fake: Fake) -> AsyncIterator[GatewayClient]:
    gateway = GatewayClient(fake.url, timeout=5.0)
    try:
        yield gateway
    finally:
        await gateway.close()


# ---- against MLServer -----------------------------------------------------------------------------
async def test_infer_returns_the_model_response(iris_server: IrisServer) -> None:
    """infer() posts a V2 request and returns the model's V2 response."""
    client = GatewayClient(iris_server.url, timeout=30.0)
    try:
        response = await client.infer(
            MODEL, iris_server.iris.v2_request(3), headers={"traceparent": TRACEPARENT}
        )
        assert response["model_name"] == MODEL
        assert response["outputs"][0]["data"] == iris_server.iris.expected[:3].tolist()
        # twice over the pooled connection
        again = await client.infer(MODEL, iris_server.iris.v2_request(3))
        assert again["outputs"][0]["data"] == response["outputs"][0]["data"]
    finally:
        await client.close()


async def test_infer_error_carries_the_model_status_and_text(iris_server: IrisServer) -> None:
    """A model's error answer becomes StepCallError with its status and error text."""
    client = GatewayClient(iris_server.url, timeout=30.0)
    try:
        with pytest.raises(StepCallError) as missing:
            await client.infer("no-such-model", iris_server.iris.v2_request(1))
        assert missing.value.status == 404
        assert missing.value.target == "no-such-model"
        bad = {"inputs": [{"name": "predict", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}]}
        with pytest.raises(StepCallError) as wrong:
            await client.infer(MODEL, bad)
        assert wrong.value.status >= 400
        assert wrong.value.message
    finally:
        await client.close()


async def test_call_model_sends_v2_bodies_to_v2_infer(iris_server: IrisServer) -> None:
    """call_model() sends a body with inputs to /v2/models/{m}/infer and returns status and body."""
    client = GatewayClient(iris_server.url, timeout=30.0)
    try:
        status, body = await client.call_model(MODEL, orjson.dumps(iris_server.iris.v2_request(2)), {})
        assert status == 200
        assert orjson.loads(body)["outputs"][0]["data"] == iris_server.iris.expected[:2].tolist()
    finally:
        await client.close()


async def test_graph_runs_on_the_real_model(iris_server: IrisServer) -> None:
    """An Ensemble graph run by GraphRunner through GatewayClient answers with both model answers."""
    client = GatewayClient(iris_server.url, timeout=30.0)
    spec = InferenceGraphSpec(
        nodes={
            "root": GraphNode(
                "Ensemble",
                (GraphStep(name="first", service_name=MODEL), GraphStep(name="second", service_name=MODEL)),
            )
        }
    )
    try:
        answer = await GraphRunner("g", spec, client).run(
            orjson.dumps(iris_server.iris.v2_request(2)), {"traceparent": TRACEPARENT}
        )
    finally:
        await client.close()
    assert answer.status == 200
    body = orjson.loads(answer.body)
    expected = iris_server.iris.expected[:2].tolist()
    assert body["first"]["outputs"][0]["data"] == expected
    assert body["second"]["outputs"][0]["data"] == expected


# ---- against the aiohttp server -------------------------------------------------------------------
async def test_infer_passes_trace_context_only(client: GatewayClient, fake: Fake) -> None:
    """infer() forwards traceparent/tracestate from the given headers, and sends JSON."""
    await client.infer(
        "m", {"inputs": []}, headers={"traceparent": TRACEPARENT, "tracestate": "a=1", "x-other": "no"}
    )
    headers = fake.seen[0]["headers"]
    assert headers["traceparent"] == TRACEPARENT
    assert headers["tracestate"] == "a=1"
    assert "x-other" not in headers
    assert headers["content-type"] == "application/json"


async def test_infer_error_text_from_json_or_raw_body(client: GatewayClient) -> None:
    """The error text is the body's "error" field, or the raw body when it is not JSON."""
    with pytest.raises(StepCallError) as json_error:
        await client.infer("fails", {"inputs": []})
    assert (json_error.value.status, json_error.value.message) == (500, "fails: model fails exploded")
    with pytest.raises(StepCallError) as text_error:
        await client.infer("plain", {"inputs": []})
    assert (text_error.value.status, text_error.value.message) == (503, "plain: upstream busy")


async def test_infer_non_json_success_is_502(client: GatewayClient) -> None:
    """A 200 answer that is not a JSON object is a 502 StepCallError."""
    with pytest.raises(StepCallError) as caught:
        await client.infer("html", {"inputs": []})
    assert caught.value.status == 502


async def test_infer_time_out_is_504(fake: Fake) -> None:
    """A call with no answer within the timeout is a 504 StepCallError."""
    client = GatewayClient(fake.url, timeout=0.2)
    try:
        with pytest.raises(StepCallError) as caught:
            await client.infer("slow", {"inputs": []})
        assert caught.value.status == 504
    finally:
        await client.close()


async def test_connect_failure_is_502() -> None:
    """A gateway that cannot be reached is a 502 StepCallError, for infer and the graph calls."""
    client = GatewayClient(f"http://127.0.0.1:{free_port()}", timeout=5.0)
    try:
        with pytest.raises(StepCallError) as caught:
            await client.infer("m", {"inputs": []})
        assert caught.value.status == 502
        with pytest.raises(StepCallError) as graph_call:
            await client.call_model("m", b'{"inputs": []}', {})
        assert graph_call.value.status == 502
    finally:
        await client.close()


async def test_call_model_routes_by_protocol(client: GatewayClient, fake: Fake) -> None:
    """A V2 body goes to /v2/.../infer, any other JSON to KServe V1 /v1/models/{m}:predict."""
    status, _ = await client.call_model("m", b'{"inputs": []}', {"traceparent": TRACEPARENT})
    assert status == 200
    status, body = await client.call_model("m", b'{"instances": [[1, 2]]}', {"traceparent": TRACEPARENT})
    assert (status, orjson.loads(body)) == (200, {"predictions": [1]})
    assert [entry["path"] for entry in fake.seen] == ["/v2/models/m/infer", "/v1/models/m:predict"]
    assert all(entry["headers"]["traceparent"] == TRACEPARENT for entry in fake.seen)


async def test_call_model_returns_error_answers(client: GatewayClient) -> None:
    """call_model() returns a non-2xx answer as (status, body) rather than raising."""
    status, body = await client.call_model("fails", b'{"inputs": []}', {})
    assert status == 500
    assert orjson.loads(body) == {"error": "model fails exploded"}


async def test_call_url_posts_to_any_http_url(client: GatewayClient, fake: Fake) -> None:
    """call_url() POSTs the body with the given headers to the URL, query included."""
    status, body = await client.call_url(f"{fake.url}/score?v=1", b'{"x": 1}', {"x-tenant": "t1"})
    assert (status, orjson.loads(body)) == (201, {"scored": {"x": 1}})
    assert fake.seen[0]["path"] == "/score?v=1"
    assert fake.seen[0]["headers"]["x-tenant"] == "t1"
    assert fake.seen[0]["headers"]["content-type"] == "application/json"


async def test_call_url_refuses_other_schemes(client: GatewayClient) -> None:
    """A URL that is not http:// is a 502 StepCallError naming it."""
    with pytest.raises(StepCallError) as caught:
        await client.call_url("https://example.invalid/x", b"{}", {})
    assert caught.value.status == 502
    assert "https://example.invalid/x" in caught.value.message


async def test_close_is_idempotent(fake: Fake) -> None:
    """close() may be called twice."""
    client = GatewayClient(fake.url, timeout=1.0)
    await client.infer("m", {"inputs": []})
    await client.close()
    await client.close()
