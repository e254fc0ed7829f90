"""Foreign kinds over the api's REST and gRPC adapters (real aiohttp and grpc.aio servers, real
nats-server): apply, get with the kind's own status, list, delete, and errors naming the field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import struct_pb2

from modelplane.libs.auth.grpc_metadata import bearer_interceptors
from modelplane.proto import control_pb2, control_pb2_grpc
from modelplane.services.api.app import App
from tests.helpers.auth import bearer

ISVC_YAML = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: sklearn-iris
  namespace: team-a
spec:
  predictor:
    sklearn:
      storageUri: gs://kfserving-examples/models/sklearn/1.0/model
"""

SDEP: dict[str, Any] = {
    "apiVersion": "machinelearning.seldon.io/v1",
    "kind": "SeldonDeployment",
    "metadata": {"name": "iris"},
    "spec": {
        "predictors": [
            {
                "name": "default",
                "replicas": 2,
                "graph": {
                    "name": "classifier",
                    "implementation": "SKLEARN_SERVER",
                    "modelUri": "gs://b/iris",
                },
            }
        ]
    },
}


@pytest.fixture
async def http(api_app: App, admin_token: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=api_app.http_url, headers=bearer(admin_token)) as session:
        yield session


@pytest.fixture
async def stub(api_app: App, admin_token: str) -> AsyncIterator[control_pb2_grpc.ControlServiceStub]:
    async with grpc.aio.insecure_channel(
        api_app.grpc_address, interceptors=bearer_interceptors(admin_token)
    ) as channel:
        yield control_pb2_grpc.ControlServiceStub(channel)


async def test_rest_apply_get_list_status_delete(http: aiohttp.ClientSession) -> None:
    async with http.post("/v1/apply", data=ISVC_YAML, headers={"Content-Type": "application/yaml"}) as resp:
        assert resp.status == 200, await resp.text()
        (item,) = (await resp.json())["items"]
    assert (item["kind"], item["name"], item["namespace"], item["outcome"]) == (
        "InferenceService",
        "sklearn-iris",
        "team-a",
        "created",
    )
    async with http.get("/v1/isvc/sklearn-iris", params={"namespace": "team-a"}) as resp:
        shown = await resp.json()
    assert (
        shown["spec"]["predictor"]["sklearn"]["storageUri"]
        == "gs://kfserving-examples/models/sklearn/1.0/model"
    )
    assert shown["metadata"]["namespace"] == "team-a"
    assert {c["type"] for c in shown["status"]["conditions"]} >= {"PredictorReady", "IngressReady", "Ready"}
    async with http.get("/v1/inferenceservices/sklearn-iris/status", params={"namespace": "team-a"}) as resp:
        assert (await resp.json())["clusterServingRuntimeName"] == "kserve-sklearnserver"
    async with http.get("/v1/isvc/sklearn-iris") as resp:  # namespace default
        assert resp.status == 404
    async with http.get("/v1/inferenceservices") as resp:
        assert [i["metadata"]["name"] for i in (await resp.json())["items"]] == ["sklearn-iris"]
    # The Model it derived is in its namespace too (the services know it as team-a--sklearn-iris).
    async with http.get("/v1/models/sklearn-iris", params={"namespace": "team-a"}) as resp:
        assert (await resp.json())["metadata"] == {
            "name": "sklearn-iris",
            "namespace": "team-a",
            "generation": 1,
        }
    async with http.get("/v1/models/team-a--sklearn-iris") as resp:
        assert (await resp.json())["metadata"]["namespace"] == "team-a"
    async with http.delete("/v1/isvc/sklearn-iris", params={"namespace": "team-a"}) as resp:
        assert (await resp.json())["outcome"] == "deleted"
    async with http.get("/v1/models/sklearn-iris", params={"namespace": "team-a"}) as resp:
        assert resp.status == 404


async def test_rest_bad_document_is_400_naming_index_and_field(http: aiohttp.ClientSession) -> None:
    predictor = {**SDEP["spec"]["predictors"][0], "traffic": 50}  # one predictor: 0 or 100
    bad = {**SDEP, "metadata": {"name": "half"}, "spec": {"predictors": [predictor]}}
    async with http.post("/v1/apply", json=[SDEP, bad]) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error.startswith("documents[1].spec.predictors[0].traffic: ")
    async with http.get("/v1/sdep") as resp:
        assert (await resp.json())["items"] == []


async def test_grpc_apply_all_get_and_delete(stub: control_pb2_grpc.ControlServiceStub) -> None:
    struct = struct_pb2.Struct()
    struct.update(SDEP)
    reply = await stub.ApplyAll(control_pb2.ApplyAllRequest(manifests=[struct]))
    (item,) = reply.items
    assert item.outcome == "created"
    assert item.resource.foreign.kind == "SeldonDeployment"
    got = await stub.Get(control_pb2.ResourceRef(kind="sdep", name="iris"))
    foreign = got.foreign
    # Integers stay integers (the record keeps JSON, not a protobuf Struct's doubles).
    assert json.loads(foreign.manifest_json)["spec"]["predictors"][0]["replicas"] == 2
    assert json.loads(foreign.status_json)["state"] == "Creating"
    assert [(o.kind, o.name) for o in foreign.owned] == [("Model", "iris")]
    listed = await stub.List(control_pb2.ListRequest(kind="SeldonDeployment"))
    assert [r.foreign.name for r in listed.resources] == ["iris"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Delete(control_pb2.ResourceRef(kind="Model", name="iris"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "owned by SeldonDeployment/default/iris" in (caught.value.details() or "")
    await stub.Delete(control_pb2.ResourceRef(kind="sdep", name="iris"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Get(control_pb2.ResourceRef(kind="Model", name="iris"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
