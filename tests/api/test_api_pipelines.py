"""Pipelines and InferenceGraphs through the api (handler, REST, gRPC) against a real nats-server."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import struct_pb2
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.auth.grpc_metadata import bearer_interceptors
from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.libs.resources.manifests import parse_manifest
from modelplane.libs.resources.types import InferenceGraph, Pipeline
from modelplane.libs.store import TypedBucket
from modelplane.proto import control_pb2, control_pb2_grpc, resources_pb2, state_pb2
from modelplane.services.api.app import App
from modelplane.services.api.handler import ControlHandler
from modelplane.services.api.kinds import parse_kind
from tests.helpers.api_handler import apply_native
from tests.helpers.auth import ADMIN, bearer


def pipeline(name: str = "chain", second: str = "b") -> dict[str, Any]:
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": name},
        "spec": {
            "steps": [{"name": "a"}, {"name": second, "inputs": ["a"]}],
            "output": {"steps": [second]},
        },
    }


def graph(name: str = "g") -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "InferenceGraph",
        "metadata": {"name": name},
        "spec": {
            "nodes": {
                "root": {
                    "routerType": "Splitter",
                    "steps": [{"serviceName": "a", "weight": 30}, {"serviceName": "b", "weight": 70}],
                }
            }
        },
    }


@pytest.fixture
async def handler(js: JetStreamContext, nc: NATS) -> AsyncIterator[ControlHandler]:
    handler = await ControlHandler.open(js, nc)
    yield handler
    await handler.close()


async def set_model(js: JetStreamContext, name: str, state: str) -> None:
    statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    await statuses.put(
        subjects.status_key("Model", name), state_pb2.ResourceStatus(kind="Model", name=name, state=state)
    )


async def set_dataflow(
    js: JetStreamContext, kind: str, name: str, generation: int, state: str, reason: str = ""
) -> None:
    bucket = await TypedBucket.open(js, subjects.KV_DATAFLOW, state_pb2.DataflowState)
    await bucket.put(
        subjects.status_key(kind, name),
        state_pb2.DataflowState(
            kind=kind,
            name=name,
            generation=generation,
            state=state,
            reason=reason,
            updated_at="2026-01-01T00:00:00Z",
        ),
    )


def conditions(status: state_pb2.ResourceStatus) -> dict[str, tuple[bool, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_kind_spellings() -> None:
    """The CLI's spellings of the new kinds resolve to them."""
    for spelling in ("Pipeline", "pipeline", "pipelines"):
        assert parse_kind(spelling) == "Pipeline"
    for spelling in ("InferenceGraph", "inferencegraphs", "inference-graph", "ig", "graph"):
        assert parse_kind(spelling) == "InferenceGraph"


async def test_pipeline_is_stored_versioned_listed_and_deleted(
    handler: ControlHandler, js: JetStreamContext
) -> None:
    """Apply creates, re-apply is unchanged, a change bumps the generation; delete removes it."""
    stored, outcome = await apply_native(handler, pipeline())
    assert (outcome, stored.meta.generation) == ("created", 1)
    assert isinstance(stored, Pipeline)
    bucket = await TypedBucket.open(js, subjects.KV_PIPELINES, resources_pb2.Pipeline)
    found = await bucket.try_get("chain")
    assert found is not None
    assert [s.name for s in found.value.spec.steps] == ["a", "b"]
    assert (await apply_native(handler, pipeline()))[1] == "unchanged"
    changed, outcome = await apply_native(handler, pipeline(second="c"))
    assert (outcome, changed.meta.generation) == ("configured", 2)
    assert await handler.get(ADMIN, "Pipeline", "chain") == changed
    assert [p.meta.name for p in await handler.list(ADMIN, "Pipeline")] == ["chain"]
    assert await handler.delete(ADMIN, "Pipeline", "chain") == "deleted"
    assert await bucket.try_get("chain") is None
    with pytest.raises(NotFoundError):
        await handler.get_status(ADMIN, "Pipeline", "chain")


async def test_inference_graph_is_stored_in_its_bucket(handler: ControlHandler, js: JetStreamContext) -> None:
    """A KServe InferenceGraph lands in KV_INFERENCE_GRAPHS and reads back as applied."""
    stored, outcome = await apply_native(handler, graph())
    assert outcome == "created"
    assert isinstance(stored, InferenceGraph)
    bucket = await TypedBucket.open(js, subjects.KV_INFERENCE_GRAPHS, resources_pb2.InferenceGraph)
    found = await bucket.try_get("g")
    assert found is not None
    assert found.value.spec.nodes["root"].router_type == "Splitter"
    assert await handler.get(ADMIN, "InferenceGraph", "g") == stored
    assert await handler.delete(ADMIN, "InferenceGraph", "g") == "deleted"


async def test_typed_apply_is_validated_like_a_manifest(handler: ControlHandler) -> None:
    """A typed Pipeline with a cycle is refused naming spec.steps."""
    doc = pipeline()
    doc["spec"]["steps"][0]["inputs"] = ["b"]
    doc["spec"]["allowCycles"] = True
    cyclic = parse_manifest(doc)
    assert isinstance(cyclic, Pipeline)
    bad = dataclasses.replace(cyclic, spec=dataclasses.replace(cyclic.spec, allow_cycles=False))
    with pytest.raises(InvalidError) as caught:
        await handler.apply(ADMIN, bad)
    assert caught.value.field == "spec.steps"
    assert "cycle" in caught.value.message


async def test_pipeline_status_follows_dataflow_and_models(
    handler: ControlHandler, js: JetStreamContext
) -> None:
    """Creating until a worker runs this generation and every model is available; Ready then;
    back to Creating when a model is not; Failed when the workers say so."""
    await apply_native(handler, pipeline())
    status = await handler.get_status(ADMIN, "Pipeline", "chain")
    assert status.state == "PipelineCreating"
    assert conditions(status)["PipelineReady"] == (False, "waiting for a dataflow worker")
    assert conditions(status)["ModelsReady"][0] is False
    assert "model a is not found (no such model)" in status.reason
    assert (status.available_replicas, status.total_replicas, status.observed_generation) == (0, 2, 0)

    await set_dataflow(js, "Pipeline", "chain", 1, "Ready")
    await set_model(js, "a", "ModelAvailable")
    await set_model(js, "b", "ModelProgressing")
    status = await handler.get_status(ADMIN, "Pipeline", "chain")
    assert status.state == "PipelineCreating"
    assert conditions(status)["PipelineReady"][0] is True
    assert conditions(status)["ModelsReady"] == (False, "model b is ModelProgressing")
    assert status.reason == "model b is ModelProgressing"
    assert status.observed_generation == 1

    await set_model(js, "b", "ModelAvailable")
    status = await handler.get_status(ADMIN, "Pipeline", "chain")
    assert status.state == "PipelineReady"
    assert all(c.status for c in status.conditions)
    assert (status.available_replicas, status.total_replicas) == (2, 2)

    await set_model(js, "a", "ModelFailed")
    assert (await handler.get_status(ADMIN, "Pipeline", "chain")).state == "PipelineCreating"
    await set_model(js, "a", "ModelAvailable")

    # A new generation is Creating until a worker takes it, even though the old one ran.
    await apply_native(handler, pipeline(second="c"))
    await set_model(js, "c", "ModelAvailable")
    status = await handler.get_status(ADMIN, "Pipeline", "chain")
    assert (status.state, status.generation, status.observed_generation) == ("PipelineCreating", 2, 1)
    assert conditions(status)["PipelineReady"] == (False, "waiting for a dataflow worker")

    await set_dataflow(js, "Pipeline", "chain", 2, "Failed", "step c: unknown reference")
    status = await handler.get_status(ADMIN, "Pipeline", "chain")
    assert status.state == "PipelineFailed"
    assert status.reason == "step c: unknown reference"
    assert conditions(status)["PipelineReady"] == (False, "step c: unknown reference")
    [listed] = await handler.list_status(ADMIN, "Pipeline")
    assert listed == status


async def test_deleted_pipeline_is_terminating_while_workers_hold_it(
    handler: ControlHandler, js: JetStreamContext
) -> None:
    """After delete, a dataflow record still there means PipelineTerminating; gone means not found."""
    await apply_native(handler, pipeline())
    await set_dataflow(js, "Pipeline", "chain", 1, "Ready")
    await handler.delete(ADMIN, "Pipeline", "chain")
    status = await handler.get_status(ADMIN, "Pipeline", "chain")
    assert status.state == "PipelineTerminating"
    assert [s.state for s in await handler.list_status(ADMIN, "Pipeline")] == ["PipelineTerminating"]
    bucket = await TypedBucket.open(js, subjects.KV_DATAFLOW, state_pb2.DataflowState)
    await bucket.delete(subjects.status_key("Pipeline", "chain"))
    with pytest.raises(NotFoundError):
        await handler.get_status(ADMIN, "Pipeline", "chain")
    assert await handler.list_status(ADMIN, "Pipeline") == []


async def test_graph_status_uses_the_same_conditions(handler: ControlHandler, js: JetStreamContext) -> None:
    """An InferenceGraph is PipelineReady once its worker runs it and its models are available."""
    await apply_native(handler, graph())
    await set_dataflow(js, "InferenceGraph", "g", 1, "Ready")
    await set_model(js, "a", "ModelAvailable")
    status = await handler.get_status(ADMIN, "InferenceGraph", "g")
    assert status.state == "PipelineCreating"
    assert "model b is" in conditions(status)["ModelsReady"][1]
    await set_model(js, "b", "ModelAvailable")
    assert (await handler.get_status(ADMIN, "InferenceGraph", "g")).state == "PipelineReady"
    assert [s.name for s in await handler.list_status(ADMIN, "InferenceGraph")] == ["g"]
    # The other kind's records are not mixed in.
    assert await handler.list_status(ADMIN, "Pipeline") == []


async def test_rest_serves_pipelines_and_graphs(api_app: App, admin_token: str) -> None:
    """POST /v1/apply takes both kinds; list, get, status and delete by URL; a bad one is 400 naming the field."""
    async with aiohttp.ClientSession(headers=bearer(admin_token)) as http:
        base = api_app.http_url
        async with http.post(f"{base}/v1/apply", json=[pipeline(), graph()]) as resp:
            assert resp.status == 200
            items = (await resp.json())["items"]
        assert [(i["kind"], i["outcome"]) for i in items] == [
            ("Pipeline", "created"),
            ("InferenceGraph", "created"),
        ]
        async with http.get(f"{base}/v1/pipelines") as resp:
            listed = (await resp.json())["items"]
        assert listed[0]["spec"]["steps"][1] == {"name": "b", "inputs": ["a"]}
        async with http.get(f"{base}/v1/inferencegraphs/g") as resp:
            assert (await resp.json())["spec"]["nodes"]["root"]["routerType"] == "Splitter"
        async with http.get(f"{base}/v1/pipelines/chain/status") as resp:
            body = await resp.json()
        assert body["state"] == "PipelineCreating"
        assert {c["type"] for c in body["conditions"]} == {"PipelineReady", "ModelsReady"}
        bad = pipeline("bad")
        bad["spec"]["steps"][1]["inputs"] = ["zz"]
        async with http.post(f"{base}/v1/apply", json=bad) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"].startswith("spec.steps[1].inputs[0]: step b: reference 'zz'")
        async with http.delete(f"{base}/v1/ig/g") as resp:
            assert (await resp.json())["outcome"] == "deleted"


async def test_grpc_applies_and_reads_pipelines(api_app: App, admin_token: str) -> None:
    """Apply a manifest, Get and GetStatus by kind over gRPC; a bad graph is INVALID_ARGUMENT naming the field."""
    async with grpc.aio.insecure_channel(
        api_app.grpc_address, interceptors=bearer_interceptors(admin_token)
    ) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        struct = struct_pb2.Struct()
        struct.update(pipeline())
        reply = await stub.Apply(control_pb2.ApplyRequest(manifest=struct))
        assert (reply.outcome, reply.resource.pipeline.meta.name) == ("created", "chain")
        got = await stub.Get(control_pb2.ResourceRef(kind="pipeline", name="chain"))
        assert [s.name for s in got.pipeline.spec.steps] == ["a", "b"]
        status = await stub.GetStatus(control_pb2.ResourceRef(kind="Pipeline", name="chain"))
        assert status.status.state == "PipelineCreating"
        typed = control_pb2.Resource(inference_graph=resources_pb2.InferenceGraph())
        typed.inference_graph.meta.name = "g"
        typed.inference_graph.spec.nodes["root"].router_type = "Switch"
        typed.inference_graph.spec.nodes["root"].steps.add(service_name="a")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Apply(control_pb2.ApplyRequest(resource=typed))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (err.value.details() or "").startswith("spec.nodes.root.steps[0].condition:")
        typed.inference_graph.spec.nodes["root"].steps[0].condition = "instances.0"
        reply = await stub.Apply(control_pb2.ApplyRequest(resource=typed))
        assert reply.outcome == "created"
        listed = await stub.ListStatus(control_pb2.ListRequest(kind="ig"))
        assert [s.name for s in listed.statuses] == ["g"]
