"""KServe InferenceGraphs end to end: real MLServer models behind the real gateway, run by a real
dataflow worker over JetStream. Manifests are KServe's own (serving.kserve.io/v1alpha1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aiohttp import web

from modelplane.proto import open_inference_pb2 as oip
from modelplane.proto import open_inference_pb2_grpc as oip_grpc
from tests.dataflow.conftest import Flow, outputs_by_name, tensor

V2_BODY = {"inputs": [tensor("INPUT0", [1.0, 2.0])]}


def graph(name: str, nodes: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": name},
        "spec": {"nodes": nodes},
    }


async def call(flow: Flow, name: str, body: Any) -> tuple[int, Any]:
    async with flow.http.post(f"{flow.url}/graphs/{name}", json=body) as resp:
        return resp.status, await resp.json()


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    """A plain HTTP service (serviceUrl steps): answers {"echo": <the body it got>}."""

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"echo": await request.json()})

    app = web.Application()
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/echo"
    finally:
        await runner.cleanup()


async def test_sequence_passes_the_response_on(flow: Flow) -> None:
    """Sequence: double, then negate on double's answer ($response): -2x."""
    await flow.put(
        graph(
            "seq",
            {
                "root": {
                    "routerType": "Sequence",
                    "steps": [
                        {"serviceName": "double", "name": "first"},
                        {"serviceName": "negate", "name": "second", "data": "$response"},
                    ],
                }
            },
        )
    )
    status, answer = await call(flow, "seq", V2_BODY)
    assert status == 200, answer
    assert outputs_by_name(answer) == {"OUTPUT0": [-2.0, -4.0]}


async def test_sequence_hard_failure_stops(flow: Flow) -> None:
    """A Hard step that fails ends the sequence with its error."""
    await flow.put(
        graph(
            "hard",
            {
                "root": {
                    "routerType": "Sequence",
                    "steps": [
                        {"serviceName": "fail", "name": "broken", "dependency": "Hard"},
                        {"serviceName": "double", "name": "after"},
                    ],
                }
            },
        )
    )
    status, answer = await call(flow, "hard", V2_BODY)
    assert status >= 400, answer


async def test_switch_takes_the_first_match_and_404s_without_one(flow: Flow) -> None:
    """Switch: the first step whose condition matches the request runs; none matching -> 404."""
    await flow.put(
        graph(
            "switch",
            {
                "root": {
                    "routerType": "Switch",
                    "steps": [
                        {"serviceName": "negate", "condition": 'inputs.#(name=="NEG")'},
                        {"serviceName": "double", "condition": 'inputs.#(name=="INPUT0")'},
                    ],
                }
            },
        )
    )
    status, answer = await call(flow, "switch", {"inputs": [tensor("NEG", [3.0])]})
    assert status == 200, answer
    assert outputs_by_name(answer) == {"OUTPUT0": [-3.0]}
    status, answer = await call(flow, "switch", V2_BODY)
    assert status == 200, answer
    assert outputs_by_name(answer) == {"OUTPUT0": [2.0, 4.0]}
    status, answer = await call(flow, "switch", {"inputs": [tensor("OTHER", [1.0])]})
    assert status == 404, answer


async def test_ensemble_is_keyed_by_step(flow: Flow, echo_url: str) -> None:
    """Ensemble: every step on the same input, the answer keyed by step name (serviceUrl too)."""
    await flow.put(
        graph(
            "ensemble",
            {
                "root": {
                    "routerType": "Ensemble",
                    "steps": [
                        {"serviceName": "double", "name": "twice"},
                        {"serviceName": "negate", "name": "minus"},
                        {"serviceUrl": echo_url, "name": "echo"},
                    ],
                }
            },
        )
    )
    status, answer = await call(flow, "ensemble", V2_BODY)
    assert status == 200, answer
    assert outputs_by_name(answer["twice"]) == {"OUTPUT0": [2.0, 4.0]}
    assert outputs_by_name(answer["minus"]) == {"OUTPUT0": [-1.0, -2.0]}
    assert answer["echo"] == {"echo": V2_BODY}


async def test_splitter_spreads_by_weight(flow: Flow) -> None:
    """Splitter 70/30 over 200 requests: each side gets its share within 4 sigma."""
    await flow.put(
        graph(
            "split",
            {
                "root": {
                    "routerType": "Splitter",
                    "steps": [
                        {"serviceName": "double", "weight": 70},
                        {"serviceName": "negate", "weight": 30},
                    ],
                }
            },
        )
    )
    doubled = 0
    total = 200
    for _ in range(total):
        status, answer = await call(flow, "split", V2_BODY)
        assert status == 200, answer
        doubled += outputs_by_name(answer)["OUTPUT0"] == [2.0, 4.0]
    sigma = (total * 0.7 * 0.3) ** 0.5
    assert abs(doubled - 0.7 * total) <= 4 * sigma


async def test_nested_node_and_grpc(flow: Flow) -> None:
    """A node calling another node; the graph answers over gRPC as <graph>.graph too."""
    await flow.put(
        graph(
            "nested",
            {
                "root": {"routerType": "Sequence", "steps": [{"nodeName": "inner"}]},
                "inner": {"routerType": "Sequence", "steps": [{"serviceName": "double"}]},
            },
        )
    )
    status, answer = await call(flow, "nested", V2_BODY)
    assert status == 200, answer
    assert outputs_by_name(answer) == {"OUTPUT0": [2.0, 4.0]}
    request = oip.ModelInferRequest(model_name="nested.graph")
    tensor_pb = request.inputs.add(name="INPUT0", datatype="FP32", shape=[1])
    tensor_pb.contents.fp32_contents.append(4.0)
    async with grpc.aio.insecure_channel(flow.gateway.grpc_target) as channel:
        response = await oip_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert list(response.outputs[0].contents.fp32_contents) == [8.0]
