"""The V2 gRPC API of the gateway, called through our generated stubs, against a real MLServer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from nats.js import JetStreamContext

from modelplane.libs.embedded_nats import free_port
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion
from modelplane.proto import open_inference_pb2 as oip
from modelplane.proto import open_inference_pb2_grpc as oip_grpc
from modelplane.services.gateway.app import App
from tests.gateway.conftest import MLServerReplica, eventually, iris_route, put_route
from tests.helpers.processes import run_python_json


@pytest.fixture
async def stub(gateway: App) -> AsyncIterator[oip_grpc.GRPCInferenceServiceStub]:
    async with grpc.aio.insecure_channel(gateway.grpc_target) as channel:
        yield oip_grpc.GRPCInferenceServiceStub(channel)


def _infer_request(mlserver: MLServerReplica, model: str, rows: int = 3) -> oip.ModelInferRequest:
    data = mlserver.iris.X[:rows]
    return oip.ModelInferRequest(
        model_name=model,
        inputs=[
            oip.ModelInferRequest.InferInputTensor(
                name="predict",
                datatype="FP64",
                shape=list(data.shape),
                contents=oip.InferTensorContents(fp64_contents=data.flatten().tolist()),
            )
        ],
    )


def _predictions(response: oip.ModelInferResponse) -> list[int]:
    return list(response.outputs[0].contents.int64_contents)


async def test_grpc_infer_returns_sklearn_predictions(
    stub: oip_grpc.GRPCInferenceServiceStub, mlserver: MLServerReplica
) -> None:
    """ModelInfer for "iris" reaches iris_1 and returns sklearn's predictions."""
    response = await stub.ModelInfer(_infer_request(mlserver, "iris"))
    assert _predictions(response) == mlserver.iris.expected[:3].tolist()


async def test_grpc_seldon_model_metadata_routes(
    stub: oip_grpc.GRPCInferenceServiceStub, mlserver: MLServerReplica
) -> None:
    """The seldon-model metadata names the model instead of model_name."""
    response = await stub.ModelInfer(
        _infer_request(mlserver, "whatever", rows=2), metadata=(("seldon-model", "iris"),)
    )
    assert _predictions(response) == mlserver.iris.expected[:2].tolist()


async def test_grpc_version_routes_and_unknown_version_is_not_found(
    stub: oip_grpc.GRPCInferenceServiceStub, mlserver: MLServerReplica
) -> None:
    """model_version "1" is served; a version the route lacks is NOT_FOUND naming it."""
    request = _infer_request(mlserver, "iris")
    request.model_version = "1"
    assert _predictions(await stub.ModelInfer(request)) == mlserver.iris.expected[:3].tolist()
    request.model_version = "9"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ModelInfer(request)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "version 9" in (err.value.details() or "")


async def test_grpc_server_and_model_metadata_and_ready(stub: oip_grpc.GRPCInferenceServiceStub) -> None:
    """Server calls describe the gateway; model calls reflect the route and the replica."""
    assert (await stub.ServerLive(oip.ServerLiveRequest())).live
    assert (await stub.ServerReady(oip.ServerReadyRequest())).ready
    server = await stub.ServerMetadata(oip.ServerMetadataRequest())
    assert server.name == "modelplane"
    assert (await stub.ModelReady(oip.ModelReadyRequest(name="iris"))).ready
    meta = await stub.ModelMetadata(oip.ModelMetadataRequest(name="iris"))
    assert meta.name == "iris_1"


async def test_grpc_unknown_model_is_not_found(
    stub: oip_grpc.GRPCInferenceServiceStub, mlserver: MLServerReplica
) -> None:
    """An unknown model is NOT_FOUND with its name in the details, for infer, ready and metadata."""
    calls = (
        stub.ModelInfer(_infer_request(mlserver, "nosuch")),
        stub.ModelReady(oip.ModelReadyRequest(name="nosuch")),
        stub.ModelMetadata(oip.ModelMetadataRequest(name="nosuch")),
    )
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert "nosuch" in (err.value.details() or "")


async def test_grpc_malformed_request_is_invalid_argument(
    stub: oip_grpc.GRPCInferenceServiceStub, mlserver: MLServerReplica
) -> None:
    """No inputs, or an input without datatype, is INVALID_ARGUMENT naming the field."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ModelInfer(oip.ModelInferRequest(model_name="iris"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "inputs: must not be empty"
    request = _infer_request(mlserver, "iris")
    request.inputs[0].datatype = ""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ModelInfer(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "inputs[0].datatype: is required"


async def test_grpc_no_replica_is_unavailable(
    gateway: App, stub: oip_grpc.GRPCInferenceServiceStub, js: JetStreamContext, mlserver: MLServerReplica
) -> None:
    """A known model with no endpoints is UNAVAILABLE for infer and not ready for ModelReady."""
    await put_route(js, Route(model="empty", versions=(RouteVersion(1, "empty_1", ()),)))

    async def routed() -> bool:
        return gateway.routes.get("empty") is not None

    await eventually(routed, 10, "route 'empty'")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ModelInfer(_infer_request(mlserver, "empty"))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not (await stub.ModelReady(oip.ModelReadyRequest(name="empty"))).ready


async def test_grpc_upstream_error_code_is_passed_through(
    stub: oip_grpc.GRPCInferenceServiceStub, mlserver: MLServerReplica
) -> None:
    """An error status from the replica reaches the client with the replica's code and details."""
    request = _infer_request(mlserver, "iris")
    request.inputs[0].shape[:] = [1, 3]
    async with grpc.aio.insecure_channel(mlserver.grpc) as channel:
        direct = oip_grpc.GRPCInferenceServiceStub(channel)
        upstream_request = oip.ModelInferRequest()
        upstream_request.CopyFrom(request)
        upstream_request.model_name = "iris_1"
        with pytest.raises(grpc.aio.AioRpcError) as expected:
            await direct.ModelInfer(upstream_request)
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await stub.ModelInfer(request)
    assert got.value.code() == expected.value.code()
    assert got.value.details() == expected.value.details()


async def test_grpc_unreachable_replica_is_skipped(
    gateway: App, stub: oip_grpc.GRPCInferenceServiceStub, js: JetStreamContext, mlserver: MLServerReplica
) -> None:
    """With a dead replica in the route, every gRPC request still succeeds on the live one."""
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
        response = await stub.ModelInfer(_infer_request(mlserver, "iris-flaky", rows=1))
        assert _predictions(response) == mlserver.iris.expected[:1].tolist()


async def test_grpc_requests_are_counted(
    gateway: App,
    stub: oip_grpc.GRPCInferenceServiceStub,
    mlserver: MLServerReplica,
    http: aiohttp.ClientSession,
) -> None:
    """gRPC inference requests appear in /metrics with protocol="grpc" and the status code name."""
    await stub.ModelInfer(_infer_request(mlserver, "iris"))
    async with http.get(f"{gateway.http_url}/metrics") as resp:
        text = await resp.text()
    assert 'modelplane_gateway_requests_total{code="OK",model="iris",protocol="grpc"} 1.0' in text


# tritonclient.grpc registers its own copy of the "inference" proto package, which clashes with
# ours in one process, so the client runs in a child process against the in-process gateway.
TRITON_GRPC_CLIENT = """
import json, sys
import numpy as np
import tritonclient.grpc as triton_grpc

target, rows = sys.argv[1], json.loads(sys.argv[2])
client = triton_grpc.InferenceServerClient(url=target)
data = np.asarray(rows, dtype=np.float64)
inp = triton_grpc.InferInput("predict", list(data.shape), "FP64")
inp.set_data_from_numpy(data)
result = client.infer("iris", inputs=[inp], request_id="grpc-req-1", model_version="1")
print(json.dumps({
    "predictions": np.asarray(result.as_numpy("predict")).flatten().tolist(),
    "id": result.get_response().id,
    "ready": client.is_model_ready("iris", model_version="1"),
    "metadata_name": client.get_model_metadata("iris", model_version="1").name,
}))
"""


async def test_tritonclient_grpc_infers_with_raw_tensors_and_versions(
    gateway: App, mlserver: MLServerReplica
) -> None:
    """tritonclient.grpc (raw tensor contents) infers through the gateway, the request id comes
    back, and versioned ready/metadata answer for version 1."""
    answer = await run_python_json(
        TRITON_GRPC_CLIENT,
        gateway.grpc_target,
        json.dumps(mlserver.iris.X[:4].tolist()),
    )
    assert answer == {
        "predictions": mlserver.iris.expected[:4].tolist(),
        "id": "grpc-req-1",
        "ready": True,
        "metadata_name": "iris_1",
    }
