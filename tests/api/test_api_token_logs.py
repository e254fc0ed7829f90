"""Tokens never reach the api's logs: a real `modelplane run api` process, its output captured
while tokens are created, used, refused and revoked over REST and gRPC."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from nats.js import JetStreamContext

from modelplane.libs.auth.grpc_metadata import bearer_interceptors
from modelplane.libs.auth.tokens import TokenStore, generate_token
from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.proto import control_pb2, control_pb2_grpc
from tests.helpers.auth import bearer
from tests.helpers.processes import stop_process_group


@pytest.fixture
def api_process(nats_server: EmbeddedNats, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """`modelplane run api` at debug level; yields (REST URL, gRPC address, log file)."""
    http_port, grpc_port = free_port(), free_port()
    log_path = tmp_path / "api.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    env.update(
        MODELPLANE_NATS_URL=nats_server.url,
        MODELPLANE_LOG_LEVEL="debug",
        MODELPLANE_API_GRPC_PORT=str(grpc_port),
        MODELPLANE_API_HTTP_PORT=str(http_port),
    )
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelplane", "run", "api"],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        yield f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", log_path
    finally:
        stop_process_group(process)


def read_log(path: Path) -> str:
    return path.read_text(errors="replace")


async def until_healthy(url: str, log_path: Path) -> None:
    """Ask /v1/health until the process answers (it is starting; each refusal is immediate)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(f"{url}/v1/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    raise AssertionError(f"the api did not start:\n{read_log(log_path)}")


async def test_no_token_in_the_api_logs(api_process: tuple[str, str, Path], js: JetStreamContext) -> None:
    """Created, used, wrong and revoked tokens: none of them (nor their secret part) is logged."""
    url, grpc_address, log_path = api_process
    admin = generate_token()
    await (await TokenStore.open(js)).ensure("admin", "admin", admin)
    await until_healthy(url, log_path)
    tokens = [admin, generate_token()]  # the second one is unknown to the api
    async with aiohttp.ClientSession(base_url=url) as http:
        async with http.post(
            "/v1/tokens", json={"role": "deployer", "name": "ci"}, headers=bearer(admin)
        ) as resp:
            assert resp.status == 201
            deployer = (await resp.json())["token"]
        tokens.append(deployer)
        evil = {"kind": "ServerConfig", "apiVersion": "modelplane.io/v1alpha1", "metadata": {"name": "e"}}
        evil["spec"] = {"runtime": "custom", "command": ["sh"]}
        async with http.post("/v1/apply", json=evil, headers=bearer(deployer)) as resp:
            assert resp.status == 403
        async with http.get("/v1/models", headers=bearer(tokens[1])) as resp:
            assert resp.status == 401
        async with http.get("/v1/models", headers={"Authorization": f"Basic {admin}"}) as resp:
            assert resp.status == 401
    async with grpc.aio.insecure_channel(grpc_address, interceptors=bearer_interceptors(admin)) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        created = await stub.CreateToken(control_pb2.CreateTokenRequest(role="viewer"))
        tokens.append(created.token)
        await stub.RevokeToken(control_pb2.RevokeTokenRequest(name=created.name))
        await stub.RevokeToken(control_pb2.RevokeTokenRequest(name="ci"))
    async with grpc.aio.insecure_channel(grpc_address, interceptors=bearer_interceptors(deployer)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await control_pb2_grpc.ControlServiceStub(channel).List(control_pb2.ListRequest(kind="Model"))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED

    async with aiohttp.ClientSession() as http, http.get(f"{url}/v1/health"):
        pass  # one more request: everything before it has been handled and logged
    logged = read_log(log_path)
    assert "token_created" in logged  # the api did log about tokens, by name
    for token in tokens:
        assert token not in logged
        assert token.removeprefix("mpt_") not in logged
        assert token[4:16] not in logged
