"""A pipeline request larger than one NATS message is the client's 413, not a retried 503."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import aiohttp
import grpc
import orjson
import pytest
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.resources import convert
from modelplane.libs.resources.manifests import parse_manifest
from modelplane.libs.resources.types import Pipeline
from modelplane.libs.store import TypedBucket
from modelplane.proto import open_inference_pb2 as oip
from modelplane.proto import open_inference_pb2_grpc as oip_grpc
from modelplane.proto import resources_pb2
from modelplane.services.gateway.app import App
from tests.gateway.conftest import eventually, start_gateway

PIPELINE = "chain"


@pytest.fixture
async def gateway(js: JetStreamContext, nats_server: EmbeddedNats) -> AsyncIterator[App]:
    """A gateway that knows pipeline ``chain`` (no worker needed: the request never gets there)."""
    app = await start_gateway(nats_server)
    try:
        parsed = parse_manifest(
            {
                "apiVersion": "mlops.seldon.io/v1alpha1",
                "kind": "Pipeline",
                "metadata": {"name": PIPELINE},
                "spec": {"steps": [{"name": "iris"}]},
            }
        )
        assert isinstance(parsed, Pipeline)
        bucket = await TypedBucket.open(js, subjects.KV_PIPELINES, resources_pb2.Pipeline)
        await bucket.put(PIPELINE, convert.pipeline_to_pb(parsed))

        async def known() -> bool:
            return PIPELINE in app.pipelines

        await eventually(known, 10, "the gateway to know the pipeline")
        yield app
    finally:
        await app.close()


def _request(size: int) -> dict[str, object]:
    return {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a" * size]}]}


async def test_rest_pipeline_body_over_the_nats_limit_is_413(gateway: App, nc: object) -> None:
    """A body over NATS's max_payload (1 MiB by default) answers 413 naming the limit at once."""
    limit = gateway._nc.max_payload if gateway._nc is not None else 0
    assert limit > 0
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gateway.http_url}/v2/pipelines/{PIPELINE}/infer",
            data=io.BytesIO(orjson.dumps(_request(limit + 1))),
        ) as resp,
    ):
        body = await resp.json()
        assert resp.status == 413, body
        assert "retry-after" not in resp.headers
        assert str(limit) in body["error"]


async def test_grpc_pipeline_message_over_the_nats_limit_is_resource_exhausted(gateway: App) -> None:
    """The same over gRPC: RESOURCE_EXHAUSTED, not UNAVAILABLE (which clients retry)."""
    limit = gateway._nc.max_payload if gateway._nc is not None else 0
    request = oip.ModelInferRequest(model_name=f"{PIPELINE}.pipeline")
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(b"a" * (limit + 1))
    async with grpc.aio.insecure_channel(gateway.grpc_target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await oip_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_small_pipeline_body_still_enters_the_stream(gateway: App) -> None:
    """Under the limit the request is published (and, with no worker here, times out: 504)."""
    gateway._dataflow._timeout = 0.5  # type: ignore[union-attr]
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gateway.http_url}/v2/pipelines/{PIPELINE}/infer", data=orjson.dumps(_request(10))
        ) as resp,
    ):
        assert resp.status == 504
