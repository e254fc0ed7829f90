"""The api's explicit body limits and TLS, with real clients (aiohttp, grpc, the CLI)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import struct_pb2

from modelplane.libs.auth.grpc_metadata import bearer_interceptors
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.tls import client_ssl_context, grpc_channel_credentials
from modelplane.proto import control_pb2, control_pb2_grpc
from modelplane.services.api.app import App
from modelplane.services.api.settings import ApiSettings
from tests.cli.harness import Cli
from tests.helpers.auth import ADMIN, bearer
from tests.helpers.tls_certs import CertFiles, make_cert

LIMIT = 4096


async def started(settings: ApiSettings) -> AsyncIterator[tuple[App, str]]:
    app = App(settings)
    await app.start()
    try:
        _, token = await app.handler.create_token(ADMIN, "admin", "test-admin")
        yield app, token
    finally:
        await app.close()


@pytest.fixture
async def small_api(nats_server: EmbeddedNats) -> AsyncIterator[tuple[App, str]]:
    settings = ApiSettings(
        nats_url=nats_server.url,
        grpc_port=0,
        http_port=0,
        max_body_bytes=LIMIT,
        max_grpc_message_bytes=LIMIT,
    )
    async for pair in started(settings):
        yield pair


@pytest.fixture
def certs(tmp_path: Path) -> CertFiles:
    return make_cert(tmp_path / "tls")


@pytest.fixture
async def tls_api(nats_server: EmbeddedNats, certs: CertFiles) -> AsyncIterator[tuple[App, str]]:
    settings = ApiSettings(
        nats_url=nats_server.url, grpc_port=0, http_port=0, tls_cert=certs.cert, tls_key=certs.key
    )
    async for pair in started(settings):
        yield pair


def big_manifest(size: int) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "big", "annotations": {"padding": "x" * size}},
        "spec": {"storageUri": "gs://bucket/model"},
    }


async def test_rest_body_over_the_limit_is_413(small_api: tuple[App, str]) -> None:
    """A body past max_body_bytes is refused with 413; one under it is applied."""
    app, token = small_api
    async with aiohttp.ClientSession(base_url=app.http_url, headers=bearer(token)) as http:
        async with http.post("/v1/apply", json=big_manifest(LIMIT * 2)) as resp:
            assert resp.status == 413
        async with http.post("/v1/apply", json=big_manifest(100)) as resp:
            assert resp.status == 200


async def test_grpc_message_over_the_limit_is_resource_exhausted(small_api: tuple[App, str]) -> None:
    app, token = small_api
    struct = struct_pb2.Struct()
    struct.update(big_manifest(LIMIT * 2))
    async with grpc.aio.insecure_channel(
        app.grpc_address, interceptors=bearer_interceptors(token)
    ) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await control_pb2_grpc.ControlServiceStub(channel).Apply(
                control_pb2.ApplyRequest(manifest=struct)
            )
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_tls_round_trip_grpc_rest_and_cli(tls_api: tuple[App, str], certs: CertFiles) -> None:
    """With a certificate, gRPC and REST speak TLS only; the CLI connects with --ca."""
    app, token = tls_api
    assert app.http_url.startswith("https://")
    async with grpc.aio.secure_channel(
        app.grpc_address, grpc_channel_credentials(certs.ca), interceptors=bearer_interceptors(token)
    ) as channel:
        reply = await control_pb2_grpc.ControlServiceStub(channel).List(control_pb2.ListRequest(kind="Model"))
        assert list(reply.resources) == []

    connector = aiohttp.TCPConnector(ssl=client_ssl_context(certs.ca))
    async with aiohttp.ClientSession(
        base_url=app.http_url, headers=bearer(token), connector=connector
    ) as http:
        async with http.get("/v1/models") as resp:
            assert resp.status == 200
        # The browser-origin check knows the https origin.
        async with http.get("/v1/models", headers={"Origin": app.http_url}) as resp:
            assert resp.status == 200
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(aiohttp.ClientError):
            async with plain.get(f"http://127.0.0.1:{app.http_port}/v1/health") as resp:
                await resp.read()
    async with aiohttp.ClientSession() as untrusted:
        with pytest.raises((aiohttp.ClientConnectorCertificateError, ssl.SSLError)):
            async with untrusted.get(f"{app.http_url}/v1/health") as resp:
                await resp.read()

    cli = Cli(f"https://{app.grpc_address}", token)
    listed = await cli("model", "list", "--ca", str(certs.ca))
    assert listed.exit_code == 0, listed.output
    from_env = await cli("model", "list", MODELPLANE_CA=str(certs.ca))
    assert from_env.exit_code == 0, from_env.output
    untrusted_cli = await cli("model", "list")
    assert untrusted_cli.exit_code == 1
    assert "Traceback" not in untrusted_cli.output
