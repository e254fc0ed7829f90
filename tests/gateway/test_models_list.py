"""GET /v2/models and the versioned metadata/ready forms, REST and gRPC, against a real MLServer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from nats.js import JetStreamContext

from modelplane.libs.dataplane.routing import RouteTable
from modelplane.libs.routes import Route, RouteVersion
from modelplane.proto import open_inference_pb2 as oip
from modelplane.proto import open_inference_pb2_grpc as oip_grpc
from modelplane.services.gateway.app import App
from modelplane.services.gateway.model_list import list_models
from tests.gateway.conftest import SERVER_MODEL_NAME, MLServerReplica, eventually, put_route


def _multi_route(mlserver: MLServerReplica) -> Route:
    """Version 2 (the default) on the replica; version 1 known but without a replica."""
    return Route(
        model="multi",
        versions=(
            RouteVersion(2, SERVER_MODEL_NAME, (mlserver.endpoint(),)),
            RouteVersion(1, "multi_1", ()),
        ),
    )


@pytest.fixture
async def multi(gateway: App, js: JetStreamContext, mlserver: MLServerReplica) -> App:
    """The gateway with routes "iris", "multi" (versions 2 and 1) and "empty" (no replica)."""
    await put_route(js, _multi_route(mlserver))
    await put_route(js, Route(model="empty", versions=(RouteVersion(1, "empty_1", ()),)))

    async def routed() -> bool:
        return gateway.routes.get("multi") is not None and gateway.routes.get("empty") is not None

    await eventually(routed, 10, "routes 'multi' and 'empty'")
    return gateway


@pytest.fixture
async def stub(multi: App) -> AsyncIterator[oip_grpc.GRPCInferenceServiceStub]:
    async with grpc.aio.insecure_channel(multi.grpc_target) as channel:
        yield oip_grpc.GRPCInferenceServiceStub(channel)


def test_list_models_reads_versions_and_readiness_from_the_route_table(mlserver: MLServerReplica) -> None:
    """Each model lists its versions (default first), whether the default has a replica, and
    which versions have one; models come sorted by name."""
    routes = RouteTable()
    routes.put(_multi_route(mlserver))
    routes.put(Route(model="bare"))
    assert [m.to_json() for m in list_models(routes)] == [
        {"name": "bare", "versions": [], "ready": False, "ready_versions": []},
        {"name": "multi", "versions": ["2", "1"], "ready": True, "ready_versions": ["2"]},
    ]


async def test_rest_lists_the_routable_models(multi: App, http: aiohttp.ClientSession) -> None:
    """GET /v2/models answers {"models": [...]} with every routed model."""
    async with http.get(f"{multi.http_url}/v2/models") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body == {
        "models": [
            {"name": "empty", "versions": ["1"], "ready": False, "ready_versions": []},
            {"name": "iris", "versions": ["1"], "ready": True, "ready_versions": ["1"]},
            {"name": "multi", "versions": ["2", "1"], "ready": True, "ready_versions": ["2"]},
        ]
    }


async def test_rest_versioned_ready_and_metadata_answer_for_that_version(
    multi: App, http: aiohttp.ClientSession
) -> None:
    """/versions/{v} answers for that version: ready/metadata when it has a replica, 503 when not,
    404 naming the model and version when the route lacks it."""
    base = f"{multi.http_url}/v2/models/multi"
    async with http.get(f"{base}/versions/2/ready") as resp:
        assert resp.status == 200
        assert await resp.json() == {"name": "multi", "ready": True}
    async with http.get(f"{base}/versions/2") as resp:
        assert resp.status == 200
        assert (await resp.json())["name"] == SERVER_MODEL_NAME
    for path in ("/versions/1/ready", "/versions/1"):
        async with http.get(f"{base}{path}") as resp:
            assert resp.status == 503
            assert "version 1" in (await resp.json())["error"]
    for path in ("/versions/3/ready", "/versions/3"):
        async with http.get(f"{base}{path}") as resp:
            assert resp.status == 404
            assert (await resp.json())["error"] == "model multi has no version 3"


async def test_grpc_versioned_ready_and_metadata_answer_for_that_version(
    stub: oip_grpc.GRPCInferenceServiceStub,
) -> None:
    """ModelReady/ModelMetadata with a version answer for it; an absent version is NOT_FOUND
    naming the model and version."""
    assert (await stub.ModelReady(oip.ModelReadyRequest(name="multi", version="2"))).ready
    assert not (await stub.ModelReady(oip.ModelReadyRequest(name="multi", version="1"))).ready
    meta = await stub.ModelMetadata(oip.ModelMetadataRequest(name="multi", version="2"))
    assert meta.name == SERVER_MODEL_NAME
    with pytest.raises(grpc.aio.AioRpcError) as unavailable:
        await stub.ModelMetadata(oip.ModelMetadataRequest(name="multi", version="1"))
    assert unavailable.value.code() == grpc.StatusCode.UNAVAILABLE
    for call in (
        stub.ModelReady(oip.ModelReadyRequest(name="multi", version="3")),
        stub.ModelMetadata(oip.ModelMetadataRequest(name="multi", version="3")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == "model multi has no version 3"
