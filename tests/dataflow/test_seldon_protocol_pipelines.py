"""A Seldon Core v1 graph of two models (a pipeline here) reached through Seldon's own path and
protocol: the real gateway, dataflow worker and MLServer (fixtures in conftest.py)."""

from __future__ import annotations

from typing import Any

import orjson

from tests.dataflow.conftest import Flow
from tests.dataflow.test_pipeline_experiments import put_experiment
from tests.dataflow.test_pipelines import seldon_pipeline

CHAIN = seldon_pipeline(
    "graph",
    [{"name": "double"}, {"name": "negate", "inputs": ["double.outputs"]}],
    output={"steps": ["negate"]},
)


async def _predict(flow: Flow, path: str, body: dict[str, Any]) -> tuple[int, Any, str | None]:
    async with flow.http.post(flow.url + path, data=orjson.dumps(body)) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers.get("x-seldon-route")


async def test_seldon_prediction_runs_the_pipeline_of_the_deployment(flow: Flow) -> None:
    """/seldon/default/graph/... finds pipeline "graph" (no model of that name): ndarray in,
    double then negate, ndarray out; a tensor request gets a tensor back."""
    await flow.put(CHAIN)
    status, answer, _ = await _predict(
        flow, "/seldon/default/graph/api/v1.0/predictions", {"data": {"ndarray": [[1.0, 2.5]]}}
    )
    assert status == 200, answer
    assert answer["data"] == {"names": ["t:0", "t:1"], "ndarray": [[-2.0, -5.0]]}
    status, answer, _ = await _predict(
        flow,
        "/seldon/default/graph/api/v1.0/predictions",
        {"data": {"tensor": {"shape": [2], "values": [3, 4]}}},
    )
    assert status == 200, answer
    # MLServer's NumpyCodec answers a 1-D array as a column [n, 1]: flat again, no names.
    assert answer["data"] == {"names": [], "tensor": {"shape": [2], "values": [-6.0, -8.0]}}


async def test_bare_path_and_a_pipeline_experiment(flow: Flow) -> None:
    """seldon-model names the pipeline on /api/v1.0/predictions; an Experiment over pipelines
    whose default is the deployment splits its Seldon requests between both candidates."""
    for name, model in (("pa", "double"), ("pb", "negate"), ("pm", "double")):
        await flow.put(seldon_pipeline(name, [{"name": model}]))
    await put_experiment(flow)
    body = {"data": {"ndarray": [2.0]}}
    async with flow.http.post(
        flow.url + "/api/v1.0/predictions", data=orjson.dumps(body), headers={"seldon-model": "pb"}
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["data"]["ndarray"] == [-2.0]
    answers: dict[str | None, list[Any]] = {}
    for _ in range(30):
        status, answer, route = await _predict(flow, "/seldon/default/pa/api/v1.0/predictions", body)
        assert status == 200, answer
        answers[route] = answer["data"]["ndarray"]
    assert answers == {":pa.pipeline:": [4.0], ":pb.pipeline:": [-2.0]}
