"""Experiments over pipelines (Seldon's resourceType: pipeline) through the real gateway and
dataflow workers: the split, sticky sessions and the mirror copy."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from modelplane.libs import subjects
from modelplane.libs.resources import convert
from modelplane.libs.resources.manifests import parse_manifest
from modelplane.libs.resources.types import Experiment
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2
from tests.dataflow.conftest import Flow, outputs_by_name, tensor
from tests.dataflow.test_pipelines import seldon_pipeline
from tests.gateway.conftest import eventually

DOUBLED, NEGATED = {"OUTPUT0": [4.0]}, {"OUTPUT0": [-2.0]}


async def put_experiment(flow: Flow) -> None:
    experiment = parse_manifest(
        {
            "apiVersion": "mlops.seldon.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": "ab"},
            "spec": {
                "default": "pa",
                "resourceType": "pipeline",
                "candidates": [{"name": "pa", "weight": 50}, {"name": "pb", "weight": 50}],
                "mirror": {"name": "pm", "percent": 100},
            },
        }
    )
    assert isinstance(experiment, Experiment)
    bucket = await TypedBucket.open(flow.js, subjects.KV_EXPERIMENTS, resources_pb2.Experiment)
    await bucket.put("ab", convert.experiment_to_pb(experiment))

    async def known() -> bool:
        return flow.gateway.experiments.get("ab") is not None

    await eventually(known, 10, "the experiment to reach the gateway")


async def test_experiment_over_pipelines(flow: Flow) -> None:
    """Requests for the baseline pipeline are split between both candidates, the route header
    keeps a session on its candidate, and the mirror pipeline gets a copy of each request."""
    for name, model in (("pa", "double"), ("pb", "negate"), ("pm", "double")):
        await flow.put(seldon_pipeline(name, [{"name": model}]))
    await put_experiment(flow)
    mirrored: asyncio.Queue[Any] = asyncio.Queue()

    async def on_mirror_answer(msg: Any) -> None:
        await mirrored.put(msg)

    nc = flow.gateway._nc
    assert nc is not None
    sub = await nc.subscribe(subjects.pipeline_outputs("pm", "*"), cb=on_mirror_answer)
    try:
        body = {"inputs": [tensor("INPUT0", [2.0])]}
        seen: dict[str, str] = {}
        for _ in range(30):
            async with flow.http.post(f"{flow.url}/v2/models/pa.pipeline/infer", json=body) as resp:
                assert resp.status == 200
                answer = outputs_by_name(await resp.json())
                seen[resp.headers["x-seldon-route"]] = "doubled" if answer == DOUBLED else "negated"
        assert seen == {":pa.pipeline:": "doubled", ":pb.pipeline:": "negated"}
        for _ in range(5):
            async with flow.http.post(
                f"{flow.url}/v2/models/pa.pipeline/infer",
                json=body,
                headers={"x-seldon-route": ":pb.pipeline:"},
            ) as resp:
                assert outputs_by_name(await resp.json()) == NEGATED
        copy = await asyncio.wait_for(mirrored.get(), 20)
        assert outputs_by_name(orjson.loads(copy.data)) == DOUBLED
    finally:
        await sub.unsubscribe()
