"""MODELPLANE_GATEWAY_AUTH=required: every route but the probes and /metrics needs an inference
(or admin) token, whatever the transport; callers are the real clients (aiohttp, tritonclient
HTTP and gRPC, the openai client). Tokens are made by the auth library's TokenStore in the real
KV bucket the api writes, and the gateway follows the bucket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import numpy as np
import openai
import pytest
import tritonclient.http.aio as triton_http
from nats.js import JetStreamContext
from tritonclient.utils import InferenceServerException

from modelplane.libs.auth.tokens import TokenStore
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.proto import open_inference_pb2 as oip
from modelplane.proto import open_inference_pb2_grpc as oip_grpc
from modelplane.services.gateway.app import App
from tests.gateway.conftest import MLServerReplica, eventually, iris_route, put_route, start_gateway
from tests.gateway.test_held_bytes import run_gateway
from tests.helpers.processes import run_python_json


@dataclass(frozen=True)
class Tokens:
    inference: str
    admin: str
    viewer: str
    deployer: str


@pytest.fixture
async def tokens(js: JetStreamContext) -> Tokens:
    store = await TokenStore.open(js)
    return Tokens(
        inference=await store.create("client", "inference"),
        admin=await store.create("root", "admin"),
        viewer=await store.create("reader", "viewer"),
        deployer=await store.create("ci", "deployer"),
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def gateway(
    js: JetStreamContext, nats_server: EmbeddedNats, mlserver: MLServerReplica, tokens: Tokens
) -> AsyncIterator[App]:
    """A gateway requiring tokens, serving model "iris" (the tokens exist before it starts)."""
    await put_route(js, iris_route(mlserver))
    app = await start_gateway(nats_server, hold_seconds=0.5, auth="required")
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                async with http.get(
                    f"{app.http_url}/v2/models/iris/ready", headers=bearer(tokens.inference)
                ) as r:
                    return r.status == 200

            await eventually(ready, 10, "the gateway to serve iris")
        yield app
    finally:
        await app.close()


def _routes(mlserver: MLServerReplica) -> list[tuple[str, str, object | None]]:
    v2 = mlserver.iris.v2_request(2)
    return [
        ("POST", "/v2/models/iris/infer", v2),
        ("POST", "/v2/models/iris/versions/1/infer", v2),
        ("GET", "/v2/models/iris", None),
        ("GET", "/v2/models/iris/ready", None),
        ("GET", "/v2/models", None),
        ("GET", "/v2", None),
        ("GET", "/v1/models/iris", None),
        ("POST", "/v1/models/iris:predict", {"instances": mlserver.iris.X[:2].tolist()}),
        ("POST", "/v2/pipelines/chain/infer", v2),
        ("POST", "/graphs/g", {}),
        ("POST", "/v1/chat/completions", {"model": "iris", "messages": []}),
        ("POST", "/openai/v1/completions", {"model": "iris", "prompt": "p"}),
        ("GET", "/v1/models", None),
    ]


async def test_every_route_needs_an_inference_or_admin_token(
    gateway: App, mlserver: MLServerReplica, tokens: Tokens
) -> None:
    """No token or a bad one: 401 with WWW-Authenticate; viewer and deployer tokens: 403; an
    inference or admin token passes the check (whatever the route answers next)."""
    async with aiohttp.ClientSession() as http:
        for method, path, body in _routes(mlserver):
            url = f"{gateway.http_url}{path}"
            for headers, expected in (
                ({}, 401),
                (bearer("mpt_" + "x" * 43), 401),
                ({"Authorization": f"Basic {tokens.inference}"}, 401),
                (bearer(tokens.viewer), 403),
                (bearer(tokens.deployer), 403),
            ):
                async with http.request(method, url, json=body, headers=headers) as resp:
                    assert resp.status == expected, (method, path, headers, await resp.text())
            for token in (tokens.inference, tokens.admin):
                async with http.request(method, url, json=body, headers=bearer(token)) as resp:
                    assert resp.status not in (401, 403), (method, path, await resp.text())


async def test_refused_answers_carry_www_authenticate_and_no_token(gateway: App, tokens: Tokens) -> None:
    """A 401 says which scheme to use; a 403 names the token and role, never the token itself."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.http_url}/v2/models") as resp:
            assert resp.status == 401
            assert resp.headers["www-authenticate"].startswith("Bearer")
        async with http.get(f"{gateway.http_url}/v2/models", headers=bearer(tokens.viewer)) as resp:
            text = await resp.text()
            assert resp.status == 403
            assert "reader" in text
            assert "viewer" in text
            assert tokens.viewer not in text


async def test_probes_and_metrics_stay_open(gateway: App) -> None:
    """Load balancers and Prometheus carry no token: the health probes and /metrics answer."""
    async with aiohttp.ClientSession() as http:
        for path in ("/v2/health/live", "/v2/health/ready", "/metrics"):
            async with http.get(f"{gateway.http_url}{path}") as resp:
                assert resp.status == 200, path


async def test_tritonclient_http_sends_its_token(
    gateway: App, mlserver: MLServerReplica, tokens: Tokens
) -> None:
    """tritonclient.http infers with an inference token in its headers, and is refused without."""
    client = triton_http.InferenceServerClient(url=gateway.http_url.removeprefix("http://"))
    try:
        data = mlserver.iris.X[:3]
        inp = triton_http.InferInput("predict", list(data.shape), "FP64")
        inp.set_data_from_numpy(data)
        result = await client.infer("iris", inputs=[inp], headers=bearer(tokens.inference))
        assert (
            np.asarray(result.as_numpy("predict")).flatten().tolist() == mlserver.iris.expected[:3].tolist()
        )
        with pytest.raises(InferenceServerException) as refused:
            await client.infer("iris", inputs=[inp])
        assert refused.value.status() == "401"
        with pytest.raises(InferenceServerException) as forbidden:
            await client.infer("iris", inputs=[inp], headers=bearer(tokens.viewer))
        assert forbidden.value.status() == "403"
    finally:
        await client.close()


async def test_grpc_needs_a_token_in_its_metadata(
    gateway: App, mlserver: MLServerReplica, tokens: Tokens
) -> None:
    """UNAUTHENTICATED without, PERMISSION_DENIED for a viewer, answered with an inference token;
    ServerLive/ServerReady stay open."""
    request = oip.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="predict", datatype="FP64", shape=[1, 4])
    tensor.contents.fp64_contents.extend(mlserver.iris.X[0].tolist())
    async with grpc.aio.insecure_channel(gateway.grpc_target) as channel:
        stub = oip_grpc.GRPCInferenceServiceStub(channel)
        assert (await stub.ServerReady(oip.ServerReadyRequest())).ready
        assert (await stub.ServerLive(oip.ServerLiveRequest())).live
        for metadata, code in (
            ((), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", "Bearer mpt_nope"),), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", f"Bearer {tokens.viewer}"),), grpc.StatusCode.PERMISSION_DENIED),
        ):
            for call in (
                stub.ModelInfer(request, metadata=metadata),
                stub.ModelMetadata(oip.ModelMetadataRequest(name="iris"), metadata=metadata),
                stub.ModelReady(oip.ModelReadyRequest(name="iris"), metadata=metadata),
                stub.ServerMetadata(oip.ServerMetadataRequest(), metadata=metadata),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as raised:
                    await call
                assert raised.value.code() == code
        answer = await stub.ModelInfer(request, metadata=(("authorization", f"Bearer {tokens.inference}"),))
        assert answer.model_name


# tritonclient.grpc registers its own copy of the "inference" proto package, which clashes with
# ours in one process, so the client runs in a child process (as in test_grpc.py).
TRITON_GRPC_CLIENT = """
import json, sys
import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

target, token, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = triton_grpc.InferenceServerClient(url=target)
data = np.asarray(rows, dtype=np.float64)
inp = triton_grpc.InferInput("predict", list(data.shape), "FP64")
inp.set_data_from_numpy(data)
result = client.infer("iris", inputs=[inp], headers={"authorization": f"Bearer {token}"})
try:
    client.infer("iris", inputs=[inp])
    refused = None
except InferenceServerException as exc:
    refused = exc.status()
print(json.dumps({"predictions": np.asarray(result.as_numpy("predict")).flatten().tolist(), "refused": refused}))
"""


async def test_tritonclient_grpc_sends_its_token(
    gateway: App, mlserver: MLServerReplica, tokens: Tokens
) -> None:
    """tritonclient.grpc with the token in its headers infers; without it is UNAUTHENTICATED."""
    answer = await run_python_json(
        TRITON_GRPC_CLIENT,
        gateway.grpc_target,
        tokens.inference,
        json.dumps(mlserver.iris.X[:2].tolist()),
    )
    assert answer == {
        "predictions": mlserver.iris.expected[:2].tolist(),
        "refused": "StatusCode.UNAUTHENTICATED",
    }


async def test_openai_client_uses_its_api_key_as_the_token(gateway: App, tokens: Tokens) -> None:
    """The openai client's api_key is the bearer token: a bad key is AuthenticationError, a
    viewer's PermissionDeniedError, an inference token reaches the model lookup."""

    def client(key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{gateway.http_url}/v1", api_key=key, max_retries=0, timeout=10)

    async with client("mpt_wrong") as oai:
        with pytest.raises(openai.AuthenticationError):
            await oai.models.list()
    async with client(tokens.viewer) as oai:
        with pytest.raises(openai.PermissionDeniedError):
            await oai.completions.create(model="iris", prompt="p")
    async with client(tokens.inference) as oai:
        listed = await oai.models.list()
        assert [m.id for m in listed.data] == ["iris"]
        with pytest.raises(openai.NotFoundError):
            await oai.completions.create(model="nope", prompt="p")


async def test_a_revoked_token_stops_working(gateway: App, js: JetStreamContext, tokens: Tokens) -> None:
    """The gateway follows the token bucket: a revoked token is 401 once the change arrives."""
    await (await TokenStore.open(js)).revoke("client")
    async with aiohttp.ClientSession() as http:

        async def refused() -> bool:
            async with http.get(f"{gateway.http_url}/v2/models", headers=bearer(tokens.inference)) as resp:
                return resp.status == 401

        await eventually(refused, 10, "the revoked token to be refused")


async def test_auth_is_off_by_default(js: JetStreamContext, nats_server: EmbeddedNats) -> None:
    """Local `up`'s default: no token needed (as Seldon, KServe and KubeAI ship)."""
    app = await start_gateway(nats_server)
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{app.http_url}/v2/models") as resp:
            assert resp.status == 200
    finally:
        await app.close()


@pytest.mark.parametrize("who", ["none", "unknown", "viewer"])
async def test_a_refused_token_is_refused_before_its_body_is_read(
    gateway: App, tokens: Tokens, who: str
) -> None:
    """From the head alone: a client announcing a 50 MiB body with ``Expect: 100-continue`` and no
    token, an unknown one or a viewer's gets the 401 or 403 instead of the invitation to send it."""
    token = {"none": None, "unknown": "mpt_" + "x" * 43, "viewer": tokens.viewer}[who]
    authorization = f"Authorization: Bearer {token}\r\n".encode() if token else b""
    host, port = gateway.http_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            + authorization
            + b"Content-Length: 52428800\r\nExpect: 100-continue\r\n\r\n"
        )
        await writer.drain()
        status_line = await reader.readline()
        head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
    finally:
        writer.close()
    if who == "viewer":
        assert status_line.startswith(b"HTTP/1.1 403"), status_line
        assert "www-authenticate" not in head
    else:
        assert status_line.startswith(b"HTTP/1.1 401"), status_line
        assert "www-authenticate: bearer" in head


def test_the_callers_token_is_never_forwarded_to_replicas() -> None:
    """Model code must not see gateway tokens: replicas get the request id and trace context only."""
    from modelplane.libs.dataplane.upstream_http import forwarded_headers

    sent = forwarded_headers({"authorization": "Bearer mpt_secret", "x-request-id": "r-1", "cookie": "c"})
    assert sent["x-request-id"] == "r-1"
    assert "authorization" not in sent
    assert "mpt_secret" not in repr(sent)


async def test_tokens_never_appear_in_the_gateway_process_log(
    js: JetStreamContext, nats_server: EmbeddedNats, mlserver: MLServerReplica, tokens: Tokens, tmp_path: Path
) -> None:
    """``modelplane run gateway`` at debug level: accepted, refused and unknown tokens alike are
    absent from everything it writes."""
    await put_route(js, iris_route(mlserver))
    bogus = "mpt_" + "q" * 43
    log = tmp_path / "gateway.log"
    with run_gateway(nats_server.url, log, log_level="debug", auth="required") as gateway:
        url = f"http://{gateway.http}"
        async with aiohttp.ClientSession() as http:

            async def served() -> bool:
                if gateway.proc.poll() is not None:
                    pytest.fail(f"gateway exited: {log.read_text()}")
                try:
                    async with http.get(
                        f"{url}/v2/models/iris/ready", headers=bearer(tokens.inference)
                    ) as resp:
                        return resp.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(served, 30, "the gateway process to serve iris")
            for token in (tokens.inference, tokens.viewer, bogus):
                for path, body in (
                    ("/v2/models/iris/infer", mlserver.iris.v2_request(1)),
                    ("/v2/models/iris/infer", {"inputs": "not a list"}),
                    ("/v2/pipelines/none/infer", {}),
                ):
                    async with http.post(f"{url}{path}", json=body, headers=bearer(token)) as resp:
                        await resp.read()
    text = log.read_text()
    assert "gateway_listening" in text  # the process wrote its log at debug level
    for token in (tokens.inference, tokens.viewer, bogus):
        assert token[4:] not in text
