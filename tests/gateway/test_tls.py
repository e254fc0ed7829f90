"""MODELPLANE_GATEWAY_TLS_CERT/KEY: REST and gRPC served over TLS, with a certificate the test
makes (``cryptography``); the clients are aiohttp, tritonclient.http and grpc, trusting it."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import numpy as np
import pytest
import tritonclient.http.aio as triton_http
from click.testing import CliRunner
from nats.js import JetStreamContext

from modelplane.cli.main import cli
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.errors import InvalidError
from modelplane.libs.tls import client_ssl_context, grpc_channel_credentials
from modelplane.proto import open_inference_pb2 as oip
from modelplane.proto import open_inference_pb2_grpc as oip_grpc
from modelplane.services.gateway.app import App
from modelplane.services.gateway.settings import GatewaySettings
from tests.gateway.conftest import MLServerReplica, eventually, iris_route, put_route, start_gateway
from tests.helpers.tls_certs import CertFiles, make_cert


@pytest.fixture
def cert(tmp_path: Path) -> CertFiles:
    return make_cert(tmp_path / "tls")


@pytest.fixture
async def gateway(
    js: JetStreamContext, nats_server: EmbeddedNats, mlserver: MLServerReplica, cert: CertFiles
) -> AsyncIterator[App]:
    await put_route(js, iris_route(mlserver))
    app = await start_gateway(nats_server, tls_cert=cert.cert, tls_key=cert.key)
    try:

        async def routed() -> bool:
            return app.routes.get("iris") is not None

        await eventually(routed, 10, "the iris route")
        yield app
    finally:
        await app.close()


async def test_rest_over_tls_with_aiohttp(gateway: App, mlserver: MLServerReplica, cert: CertFiles) -> None:
    """aiohttp trusting the test's certificate infers over https; plain http gets no answer."""
    assert gateway.http_url.startswith("https://")
    context = client_ssl_context(cert.ca)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{gateway.http_url}/v2/models/iris/infer", json=mlserver.iris.v2_request(2), ssl=context
        ) as resp:
            assert resp.status == 200
            answer = await resp.json()
        assert answer["outputs"][0]["data"] == mlserver.iris.expected[:2].tolist()
        plain = gateway.http_url.replace("https://", "http://")
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"{plain}/v2/health/live") as resp:
                await resp.read()
        # A client that does not trust the certificate is refused by its own TLS check.
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with http.get(f"{gateway.http_url}/v2/health/live", ssl=ssl.create_default_context()):
                pass


async def test_rest_over_tls_with_tritonclient(
    gateway: App, mlserver: MLServerReplica, cert: CertFiles
) -> None:
    client = triton_http.InferenceServerClient(
        url=gateway.http_url.removeprefix("https://"), ssl=True, ssl_context=client_ssl_context(cert.ca)
    )
    try:
        data = mlserver.iris.X[:3]
        inp = triton_http.InferInput("predict", list(data.shape), "FP64")
        inp.set_data_from_numpy(data)
        result = await client.infer("iris", inputs=[inp])
        assert (
            np.asarray(result.as_numpy("predict")).flatten().tolist() == mlserver.iris.expected[:3].tolist()
        )
    finally:
        await client.close()


async def test_grpc_over_tls(gateway: App, mlserver: MLServerReplica, cert: CertFiles) -> None:
    """A secure channel trusting the certificate infers; an insecure one cannot."""
    request = oip.ModelInferRequest(model_name="iris")
    tensor = request.inputs.add(name="predict", datatype="FP64", shape=[1, 4])
    tensor.contents.fp64_contents.extend(mlserver.iris.X[0].tolist())
    async with grpc.aio.secure_channel(gateway.grpc_target, grpc_channel_credentials(cert.ca)) as channel:
        answer = await oip_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    assert answer.model_name
    async with grpc.aio.insecure_channel(gateway.grpc_target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await oip_grpc.GRPCInferenceServiceStub(channel).ServerLive(oip.ServerLiveRequest(), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_missing_key_file_is_a_clear_error(
    nats_server: EmbeddedNats, cert: CertFiles, tmp_path: Path
) -> None:
    """Only one of the pair, or a file that is not there, is refused naming the setting."""
    with pytest.raises(ValueError, match="tls_cert and tls_key go together"):
        GatewaySettings(tls_cert=cert.cert)
    with pytest.raises(InvalidError) as raised:
        await start_gateway(nats_server, tls_cert=cert.cert, tls_key=tmp_path / "missing.key")
    assert raised.value.field == "tls_key"


async def test_cli_infers_over_tls_with_its_ca(
    gateway: App, mlserver: MLServerReplica, cert: CertFiles
) -> None:
    """`model infer --ca` speaks https (an http:// URL too: the CA selects TLS, as for the api);
    without the CA the CLI exits 1 saying to pass --ca."""
    runner = CliRunner()
    plain_url = gateway.http_url.replace("https://", "http://")
    body = json.dumps(mlserver.iris.v2_request(2))
    env = {"MODELPLANE_TOKEN": "", "MODELPLANE_CA": ""}
    for url in (gateway.http_url, plain_url):
        args = ["model", "infer", "iris", body, "--gateway", url, "--ca", str(cert.ca)]
        result = await asyncio.to_thread(runner.invoke, cli, args, env=env)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["outputs"][0]["data"] == mlserver.iris.expected[:2].tolist()
    untrusted = ["model", "infer", "iris", body, "--gateway", gateway.http_url]
    result = await asyncio.to_thread(runner.invoke, cli, untrusted, env=env)
    assert result.exit_code == 1, result.output
    assert "pass --ca" in result.output
