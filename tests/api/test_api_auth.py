"""Authentication and roles on the api, over real REST and gRPC servers: the attacks of issue 14.

Each test here fails with its protection removed: no token check, no role check, no Origin or
Content-Type check.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import struct_pb2
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.auth.grpc_metadata import bearer_interceptors
from modelplane.libs.store import TypedBucket
from modelplane.proto import control_pb2, control_pb2_grpc, resources_pb2
from modelplane.services.api.app import App
from tests.helpers.auth import ADMIN, bearer

# The evil.json: a ServerConfig running a shell command, and a Server using it.
EVIL: list[dict[str, Any]] = [
    {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "ServerConfig",
        "metadata": {"name": "evil"},
        "spec": {"runtime": "custom", "command": ["sh", "-c", "touch /tmp/pwned"]},
    },
    {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Server",
        "metadata": {"name": "evil"},
        "spec": {"serverConfig": "evil"},
    },
]
MODEL: dict[str, Any] = {
    "apiVersion": "modelplane.io/v1alpha1",
    "kind": "Model",
    "metadata": {"name": "iris"},
    "spec": {"storageUri": "gs://seldon-models/iris", "requirements": ["sklearn"]},
}


async def token_for(api_app: App, role: str) -> str:
    _, token = await api_app.handler.create_token(ADMIN, role, f"test-{role}")
    return token


@pytest.fixture
async def http(api_app: App) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=api_app.http_url) as session:
        yield session


async def nothing_stored(js: JetStreamContext) -> None:
    configs = await TypedBucket.open(js, subjects.KV_SERVER_CONFIGS, resources_pb2.ServerConfig)
    servers = await TypedBucket.open(js, subjects.KV_SERVERS, resources_pb2.Server)
    assert await configs.try_get("evil") is None
    assert await servers.try_get("evil") is None


async def test_text_plain_apply_without_token_is_401_and_nothing_is_applied(
    http: aiohttp.ClientSession, js: JetStreamContext
) -> None:
    """The browser attack: a text/plain POST with no token is refused before anything is read."""
    body = json.dumps(EVIL)
    async with http.post("/v1/apply", data=body, headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == "Bearer"
        assert "bearer token" in (await resp.json())["error"]
    async with http.post("/v1/apply", json=EVIL) as resp:
        assert resp.status == 401
    await nothing_stored(js)


async def test_text_plain_is_415_even_with_an_admin_token(
    http: aiohttp.ClientSession, admin_token: str, js: JetStreamContext
) -> None:
    """Only JSON and YAML bodies are read: a form or text/plain body is 415."""
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        headers = {**bearer(admin_token), "Content-Type": content_type}
        async with http.post("/v1/apply", data=json.dumps(EVIL), headers=headers) as resp:
            assert resp.status == 415, content_type
    await nothing_stored(js)


async def test_deployer_may_not_set_command_rest(
    api_app: App, http: aiohttp.ClientSession, js: JetStreamContext
) -> None:
    """The same body as JSON with a deployer token: 403 naming spec.command, nothing stored."""
    deployer = await token_for(api_app, "deployer")
    async with http.post("/v1/apply", json=EVIL, headers=bearer(deployer)) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"] == "documents[0].spec.command: the deployer role may not set it"
    await nothing_stored(js)


async def test_deployer_may_not_set_command_grpc(api_app: App, js: JetStreamContext) -> None:
    """Over gRPC: PERMISSION_DENIED naming spec.command."""
    deployer = await token_for(api_app, "deployer")
    struct = struct_pb2.Struct()
    struct.update(EVIL[0])
    async with grpc.aio.insecure_channel(
        api_app.grpc_address, interceptors=bearer_interceptors(deployer)
    ) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Apply(control_pb2.ApplyRequest(manifest=struct))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert caught.value.details() == "spec.command: the deployer role may not set it"
    await nothing_stored(js)


async def test_deployer_rules(api_app: App, http: aiohttp.ClientSession) -> None:
    """A deployer applies and scales models, but no Servers, no custom runtime, no env anywhere."""
    headers = bearer(await token_for(api_app, "deployer"))
    async with http.post("/v1/apply", json=MODEL, headers=headers) as resp:
        assert resp.status == 200
    async with http.post("/v1/models/iris/scale", json={"replicas": 2}, headers=headers) as resp:
        assert resp.status == 200
    with_env = {**MODEL, "spec": {**MODEL["spec"], "env": {"LD_PRELOAD": "/x.so"}}}
    async with http.post("/v1/apply", json=with_env, headers=headers) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"].startswith("spec.env:")
    custom = {**EVIL[0], "spec": {"runtime": "custom"}}
    async with http.post("/v1/apply", json=custom, headers=headers) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"].startswith("spec.runtime:")
    async with http.post("/v1/apply", json=EVIL[1], headers=headers) as resp:
        assert resp.status == 403
        assert (await resp.json())["error"] == "kind: the deployer role may not apply Servers"
    async with http.post("/v1/servers/mlserver/scale", json={"replicas": 3}, headers=headers) as resp:
        assert resp.status == 403
    async with http.delete("/v1/serverconfigs/mlserver", headers=headers) as resp:
        assert resp.status == 403


async def test_viewer_reads_but_cannot_apply(
    api_app: App, http: aiohttp.ClientSession, js: JetStreamContext
) -> None:
    """A viewer lists and reads status; apply, delete and scale are 403 / PERMISSION_DENIED."""
    viewer = await token_for(api_app, "viewer")
    async with http.get("/v1/models", headers=bearer(viewer)) as resp:
        assert resp.status == 200
    async with http.post("/v1/apply", json=MODEL, headers=bearer(viewer)) as resp:
        assert resp.status == 403
        assert "viewer role may not apply" in (await resp.json())["error"]
    models = await TypedBucket.open(js, subjects.KV_MODELS, resources_pb2.Model)
    assert await models.try_get("iris") is None
    async with grpc.aio.insecure_channel(
        api_app.grpc_address, interceptors=bearer_interceptors(viewer)
    ) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        await stub.List(control_pb2.ListRequest(kind="Model"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Delete(control_pb2.ResourceRef(kind="Model", name="iris"))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_inference_token_cannot_read(api_app: App, http: aiohttp.ClientSession) -> None:
    """The inference role is for the gateway: nothing on the control API."""
    inference = await token_for(api_app, "inference")
    async with http.get("/v1/models", headers=bearer(inference)) as resp:
        assert resp.status == 403
    async with grpc.aio.insecure_channel(
        api_app.grpc_address, interceptors=bearer_interceptors(inference)
    ) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.List(control_pb2.ListRequest(kind="Model"))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        watch = stub.WatchStatus(control_pb2.WatchRequest(kind="Model"))
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            await watch.read()
        assert streamed.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_every_grpc_method_needs_a_token(api_app: App) -> None:
    """Without metadata, or with an unknown token, every call is UNAUTHENTICATED."""
    async with grpc.aio.insecure_channel(api_app.grpc_address) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        calls = [
            stub.Apply(control_pb2.ApplyRequest()),
            stub.List(control_pb2.ListRequest(kind="Model")),
            stub.ListTokens(control_pb2.ListTokensRequest()),
            stub.CreateToken(control_pb2.CreateTokenRequest(role="admin")),
        ]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        for stream in (
            stub.WatchStatus(control_pb2.WatchRequest(kind="Model")),
            stub.FollowModel(control_pb2.FollowModelRequest(name="iris")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stream.read()
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with grpc.aio.insecure_channel(
        api_app.grpc_address, interceptors=bearer_interceptors("mpt_" + "x" * 43)
    ) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await control_pb2_grpc.ControlServiceStub(channel).List(control_pb2.ListRequest(kind="Model"))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_token_admin_and_revocation(
    http: aiohttp.ClientSession, admin_token: str, js: JetStreamContext
) -> None:
    """Admin creates, lists and revokes tokens over REST; a revoked token is 401 at once; the KV
    holds the token's hash only; a non-admin cannot manage tokens."""
    async with http.post(
        "/v1/tokens", json={"role": "viewer", "name": "ci"}, headers=bearer(admin_token)
    ) as resp:
        assert resp.status == 201
        created = await resp.json()
    token = created["token"]
    assert created["name"] == "ci"
    kv = await js.key_value(subjects.KV_TOKENS)
    raw = (await kv.get("ci")).value or b""
    assert token.encode() not in raw
    assert token[4:].encode() not in raw

    async with http.get("/v1/models", headers=bearer(token)) as resp:
        assert resp.status == 200
    async with http.get("/v1/tokens", headers=bearer(token)) as resp:
        assert resp.status == 403
    async with http.get("/v1/tokens", headers=bearer(admin_token)) as resp:
        listed = await resp.json()
    assert {"name": "ci", "role": "viewer"}.items() <= next(
        t for t in listed["items"] if t["name"] == "ci"
    ).items()
    assert token not in json.dumps(listed)

    async with http.delete("/v1/tokens/ci", headers=bearer(admin_token)) as resp:
        assert resp.status == 200
    async with http.get("/v1/models", headers=bearer(token)) as resp:
        assert resp.status == 401


async def test_foreign_origin_is_403_and_no_cors(
    api_app: App, http: aiohttp.ClientSession, admin_token: str
) -> None:
    """A request from another origin is refused even with a token; the api's own origin is not;
    a preflight gets no Access-Control-* header."""
    headers = {**bearer(admin_token), "Origin": "http://evil.example"}
    async with http.get("/v1/models", headers=headers) as resp:
        assert resp.status == 403
        assert "cross-origin" in (await resp.json())["error"]
    async with http.post("/v1/apply", json=MODEL, headers=headers) as resp:
        assert resp.status == 403
    own = {**bearer(admin_token), "Origin": f"http://127.0.0.1:{api_app.http_port}"}
    async with http.get("/v1/models", headers=own) as resp:
        assert resp.status == 200
    preflight = {
        "Origin": "http://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with http.options("/v1/apply", headers=preflight) as resp:
        assert resp.status >= 400
        assert not [h for h in resp.headers if h.lower().startswith("access-control-")]


async def test_health_needs_no_token(http: aiohttp.ClientSession) -> None:
    async with http.get("/v1/health") as resp:
        assert resp.status == 200


async def test_deployer_typed_resources_over_grpc(api_app: App) -> None:
    """Typed resources go through the same rules: a Model is applied, a ServerConfig is not."""
    deployer = await token_for(api_app, "deployer")
    model = resources_pb2.Model(
        meta=resources_pb2.ObjectMeta(name="iris"),
        spec=resources_pb2.ModelSpec(storage_uri="gs://b/m", replicas=1),
    )
    config = resources_pb2.ServerConfig(
        meta=resources_pb2.ObjectMeta(name="evil"),
        spec=resources_pb2.ServerConfigSpec(runtime="custom", command=["sh"]),
    )
    async with grpc.aio.insecure_channel(
        api_app.grpc_address, interceptors=bearer_interceptors(deployer)
    ) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        applied = await stub.Apply(control_pb2.ApplyRequest(resource=control_pb2.Resource(model=model)))
        assert applied.outcome == "created"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Apply(control_pb2.ApplyRequest(resource=control_pb2.Resource(server_config=config)))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert caught.value.details() == "kind: the deployer role may not apply ServerConfigs"
