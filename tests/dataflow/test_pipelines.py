"""Seldon v2 pipeline shapes end to end: real MLServer models, the real gateway, real dataflow
workers, NATS JetStream between them. Manifests are Seldon's own (mlops.seldon.io/v1alpha1)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import numpy as np
import orjson
import pytest

from modelplane.libs import dataflow_stream, subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.routes import Route, RouteVersion
from modelplane.proto import open_inference_pb2 as oip
from modelplane.proto import open_inference_pb2_grpc as oip_grpc
from tests.dataflow.conftest import Flow, ModelsReplica, outputs_by_name, start_worker, tensor
from tests.gateway.conftest import eventually, put_route


def seldon_pipeline(name: str, steps: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": name},
        "spec": {"steps": steps, **spec},
    }


async def alias(flow: Flow, replica: ModelsReplica, name: str, served_as: str) -> None:
    """Route model ``name`` to the replica's ``served_as`` (two steps cannot share a model name)."""
    await put_route(flow.js, Route(model=name, versions=(RouteVersion(1, served_as, (replica.endpoint(),)),)))

    async def routed() -> bool:
        return flow.gateway.routes.get(name) is not None

    await eventually(routed, 10, f"route of {name}")


async def test_chain_with_tensor_map(flow: Flow, models_replica: ModelsReplica) -> None:
    """Two tfsimple-like models chained, OUTPUT0/1 renamed to INPUT0/1: (a+b)+(a-b) = 2a."""
    await alias(flow, models_replica, "add2", "add")
    await flow.put(
        seldon_pipeline(
            "chain",
            [
                {"name": "add"},
                {
                    "name": "add2",
                    "inputs": ["add.outputs"],
                    "tensorMap": {"add.outputs.OUTPUT0": "INPUT0", "add.outputs.OUTPUT1": "INPUT1"},
                },
            ],
            output={"steps": ["add2"]},
        )
    )
    status, answer = await flow.infer(
        "chain", [tensor("INPUT0", [1, 2]), tensor("INPUT1", [3, 5])], id="my-id"
    )
    assert status == 200, answer
    assert outputs_by_name(answer) == {"OUTPUT0": [2.0, 4.0], "OUTPUT1": [6.0, 10.0]}
    assert answer["id"] == "my-id"


async def test_inner_join_of_two_steps(flow: Flow, models_replica: ModelsReplica) -> None:
    """A step joining one tensor of each of two upstream steps waits for both (inner)."""
    for name in ("add2", "add3"):
        await alias(flow, models_replica, name, "add")
    await flow.put(
        seldon_pipeline(
            "join",
            [
                {"name": "add"},
                {"name": "add2"},
                {
                    "name": "add3",
                    "inputs": ["add.outputs.OUTPUT0", "add2.outputs.OUTPUT1"],
                    "tensorMap": {"add.outputs.OUTPUT0": "INPUT0", "add2.outputs.OUTPUT1": "INPUT1"},
                },
            ],
            output={"steps": ["add3"]},
        )
    )
    status, answer = await flow.infer("join", [tensor("INPUT0", [10]), tensor("INPUT1", [4])])
    assert status == 200, answer
    # add3: INPUT0 = 10+4 = 14, INPUT1 = 10-4 = 6 -> OUTPUT0 20, OUTPUT1 8
    assert outputs_by_name(answer) == {"OUTPUT0": [20.0], "OUTPUT1": [8.0]}


async def test_conditional_branch_answers_from_the_branch_taken(flow: Flow) -> None:
    """The router emits OUTPUT0 or OUTPUT1; only the branch fed by it runs (stepsJoin any)."""
    await flow.put(
        seldon_pipeline(
            "branch",
            [
                {"name": "router"},
                {"name": "double", "inputs": ["router.outputs.OUTPUT0"]},
                {"name": "negate", "inputs": ["router.outputs.OUTPUT1"]},
            ],
            output={"steps": ["double", "negate"], "stepsJoin": "any"},
        )
    )
    status, answer = await flow.infer("branch", [tensor("INPUT0", [1, 2])])
    assert status == 200, answer
    assert outputs_by_name(answer) == {"OUTPUT0": [2.0, 4.0]}
    status, answer = await flow.infer("branch", [tensor("INPUT0", [-1, -2])])
    assert status == 200, answer
    assert outputs_by_name(answer) == {"OUTPUT0": [1.0, 2.0]}


async def test_trigger_join_any(flow: Flow) -> None:
    """A step gated by two triggers joined 'any' runs when one of them is present, and the
    request fails clearly when neither is."""
    await flow.put(
        seldon_pipeline(
            "triggers",
            [
                {
                    "name": "double",
                    "inputs": ["triggers.inputs.INPUT0"],
                    "triggers": ["triggers.inputs.OK1", "triggers.inputs.OK2"],
                    "triggersJoinType": "any",
                }
            ],
            output={"steps": ["double"]},
        )
    )
    status, answer = await flow.infer("triggers", [tensor("INPUT0", [3]), tensor("OK2", [1])])
    assert status == 200, answer
    assert outputs_by_name(answer) == {"OUTPUT0": [6.0]}
    status, answer = await flow.infer("triggers", [tensor("INPUT0", [3])])
    assert status >= 400
    assert "double" in answer["error"]


async def test_batch_of_two_is_one_model_call(flow: Flow) -> None:
    """Two concurrent requests to a step with batch size 2 reach the model as one call of two
    rows; each gets its own row back."""
    await flow.put(
        seldon_pipeline("batched", [{"name": "batchsize", "batch": {"size": 2, "windowMs": 5000}}])
    )
    first, second = await asyncio.gather(
        flow.infer("batched", [tensor("INPUT0", [1.0], shape=[1, 1])]),
        flow.infer("batched", [tensor("INPUT0", [2.0], shape=[1, 1])]),
    )
    for (status, answer), value in ((first, 1.0), (second, 2.0)):
        assert status == 200, answer
        assert outputs_by_name(answer) == {"OUTPUT0": [value], "BATCH": [2]}


async def test_pipeline_chained_from_another_pipelines_output(flow: Flow) -> None:
    """A pipeline whose input is another pipeline's output answers on its own output subject
    for every request of the first, under the same request id."""
    await flow.put(seldon_pipeline("first", [{"name": "double"}]))
    await flow.put(
        seldon_pipeline(
            "second",
            [{"name": "negate"}],
            input={"externalInputs": ["first.outputs"], "tensorMap": {"first.outputs.OUTPUT0": "INPUT0"}},
        )
    )
    answers: asyncio.Queue[Any] = asyncio.Queue()

    async def on_answer(msg: Any) -> None:
        await answers.put(msg)

    nc = flow.gateway._nc  # the test's own connection would do as well; this one exists
    assert nc is not None
    sub = await nc.subscribe(subjects.pipeline_outputs("second", "*"), cb=on_answer)
    try:
        status, answer = await flow.infer("first", [tensor("INPUT0", [5])])
        assert status == 200, answer
        msg = await asyncio.wait_for(answers.get(), 20)
        assert outputs_by_name(orjson.loads(msg.data)) == {"OUTPUT0": [-10.0]}
    finally:
        await sub.unsubscribe()


async def test_cycle_bounded_by_max_step_revisits(flow: Flow) -> None:
    """A step feeding itself runs until its model emits DONE, within maxStepRevisits; with too
    few revisits allowed the request ends with an error instead of looping."""
    steps = [
        {
            "name": "increment",
            "inputs": ["loop.inputs.INPUT0", "increment.outputs.OUTPUT0"],
            "inputsJoinType": "any",
            "tensorMap": {"increment.outputs.OUTPUT0": "INPUT0"},
        }
    ]
    await flow.put(
        seldon_pipeline(
            "loop", steps, output={"steps": ["increment.outputs.DONE"]}, allowCycles=True, maxStepRevisits=10
        )
    )
    status, answer = await flow.infer("loop", [tensor("INPUT0", [0], datatype="INT64")])
    assert status == 200, answer
    assert outputs_by_name(answer) == {"DONE": [3]}
    await flow.put(
        seldon_pipeline(
            "loop", steps, output={"steps": ["increment.outputs.DONE"]}, allowCycles=True, maxStepRevisits=1
        ),
        generation=2,
    )

    async def updated() -> bool:
        entry = flow.workers[0].table.pipeline("loop") if flow.workers[0].table else None
        return entry is not None and entry.pipeline.spec.max_step_revisits == 1

    await eventually(updated, 10, "the new generation of loop")
    status, answer = await flow.infer("loop", [tensor("INPUT0", [0], datatype="INT64")])
    assert status >= 400
    assert "increment" in answer["error"]


async def test_a_failing_step_ends_the_request_with_its_error(flow: Flow) -> None:
    """A step whose model fails ends the request; the error names the step."""
    await flow.put(seldon_pipeline("broken", [{"name": "double"}, {"name": "fail", "inputs": ["double"]}]))
    status, answer = await flow.infer("broken", [tensor("INPUT0", [1])])
    assert status >= 400
    assert "fail" in answer["error"]


async def test_addressing_a_pipeline(flow: Flow) -> None:
    """A pipeline answers on /v2/pipelines/<p>/infer and by the seldon-model header; an unknown
    one is a 404 naming it."""
    await flow.put(seldon_pipeline("twice", [{"name": "double"}]))
    body = {"inputs": [tensor("INPUT0", [4])]}
    async with flow.http.post(f"{flow.url}/v2/pipelines/twice/infer", json=body) as resp:
        assert resp.status == 200
        assert outputs_by_name(await resp.json()) == {"OUTPUT0": [8.0]}
    async with flow.http.post(
        f"{flow.url}/v2/models/anything/infer", json=body, headers={"seldon-model": "twice.pipeline"}
    ) as resp:
        assert resp.status == 200
        assert outputs_by_name(await resp.json()) == {"OUTPUT0": [8.0]}
    async with flow.http.post(f"{flow.url}/v2/models/nope.pipeline/infer", json=body) as resp:
        assert resp.status == 404
        assert "nope" in (await resp.json())["error"]


async def test_pipeline_over_grpc(flow: Flow) -> None:
    """ModelInfer with model_name <p>.pipeline runs the pipeline and answers in protobuf."""
    await flow.put(seldon_pipeline("twice", [{"name": "double"}]))
    request = oip.ModelInferRequest(model_name="twice.pipeline", id="g-1")
    tensor_pb = request.inputs.add(name="INPUT0", datatype="FP32", shape=[2])
    tensor_pb.contents.fp32_contents.extend([1.5, 2.5])
    async with grpc.aio.insecure_channel(flow.gateway.grpc_target) as channel:
        stub = oip_grpc.GRPCInferenceServiceStub(channel)
        response = await stub.ModelInfer(request, timeout=30)
        assert response.id == "g-1"
        assert [o.name for o in response.outputs] == ["OUTPUT0"]
        assert list(response.outputs[0].contents.fp32_contents) == [3.0, 5.0]
        raw_request = oip.ModelInferRequest(model_name="twice.pipeline")
        raw_request.inputs.add(name="INPUT0", datatype="FP32", shape=[2])
        raw_request.raw_input_contents.append(np.array([1.5, 2.5], dtype="<f4").tobytes())
        raw_response = await stub.ModelInfer(raw_request, timeout=30)
        # A raw request is answered raw (tritonclient reads only raw contents).
        assert np.frombuffer(raw_response.raw_output_contents[0], dtype="<f4").tolist() == [3.0, 5.0]
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.ModelInfer(oip.ModelInferRequest(model_name="nope.pipeline"), timeout=30)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_steps_through_the_gateway_process(
    flow_without_workers: Flow, nats_server: EmbeddedNats
) -> None:
    """With step_calls = gateway, a worker calls the steps' models through the gateway process."""
    flow = flow_without_workers
    flow.workers.append(await start_worker(nats_server, flow.gateway, step_calls="gateway"))
    await flow.put(seldon_pipeline("viagw", [{"name": "double"}, {"name": "negate", "inputs": ["double"]}]))
    status, answer = await flow.infer("viagw", [tensor("INPUT0", [2.5])])
    assert status == 200, answer
    assert outputs_by_name(answer) == {"OUTPUT0": [-5.0]}
    async with flow.http.get(f"{flow.url}/metrics") as resp:
        metrics = await resp.text()
    # The gateway served both steps' calls (and the pipeline request itself).
    for model in ("double", "negate"):
        assert (
            f'modelplane_gateway_requests_total{{code="200",model="{model}",protocol="rest"}} 1.0' in metrics
        )


async def test_chained_pipeline_joining_two_upstream_pipelines(flow: Flow) -> None:
    """A diamond: r feeds p1 and p2; q joins p1's and p2's outputs of the same request (inner,
    across two upstream pipelines, possibly answered by different workers) and answers once."""
    await flow.put(seldon_pipeline("r", [{"name": "double"}]))
    for name, model in (("p1", "negate"), ("p2", "double")):
        await flow.put(
            seldon_pipeline(
                name,
                [{"name": model}],
                input={"externalInputs": ["r.outputs"], "tensorMap": {"r.outputs.OUTPUT0": "INPUT0"}},
            )
        )
    await flow.put(
        seldon_pipeline(
            "q",
            [{"name": "add"}],
            input={
                "externalInputs": ["p1.outputs.OUTPUT0", "p2.outputs.OUTPUT0"],
                "tensorMap": {"p1.outputs.OUTPUT0": "INPUT0", "p2.outputs.OUTPUT0": "INPUT1"},
            },
        )
    )
    answers: asyncio.Queue[Any] = asyncio.Queue()

    async def on_answer(msg: Any) -> None:
        await answers.put(msg)

    nc = flow.gateway._nc
    assert nc is not None
    sub = await nc.subscribe(subjects.pipeline_outputs("q", "*"), cb=on_answer)
    try:
        status, answer = await flow.infer("r", [tensor("INPUT0", [3.0])])
        assert status == 200, answer
        msg = await asyncio.wait_for(answers.get(), 20)
        # p1: -6, p2: 12 -> add: OUTPUT0 = 6, OUTPUT1 = -18
        assert outputs_by_name(orjson.loads(msg.data)) == {"OUTPUT0": [6.0], "OUTPUT1": [-18.0]}
        assert msg.subject.rsplit(".", 1)[-1] == (msg.headers or {}).get("Nats-Msg-Id", "").rsplit(".", 1)[-1]
    finally:
        await sub.unsubscribe()


def _joined_with_slow(join_type: str, window_ms: int) -> list[dict[str, Any]]:
    """double (fast) and slow (one second) on the pipeline input, joined by a third step."""
    return [
        {"name": "double"},
        {"name": "slow"},
        {
            "name": "add",
            "inputs": ["double.outputs.OUTPUT0", "slow.outputs.OUTPUT0"],
            "tensorMap": {"double.outputs.OUTPUT0": "INPUT0", "slow.outputs.OUTPUT0": "INPUT1"},
            "inputsJoinType": join_type,
            "joinWindowMs": window_ms,
        },
    ]


async def test_joins_with_a_slow_input(flow: Flow) -> None:
    """Against a model that takes a second: an inner join waits for it; an inner join whose
    window is shorter ends the request with an error naming the step and the missing input; an
    outer join with a short window goes on with what arrived."""
    body = [tensor("INPUT0", [2.0])]
    await flow.put(seldon_pipeline("waits", _joined_with_slow("inner", 5000)))
    status, answer = await flow.infer("waits", body)
    assert status == 200, answer
    assert outputs_by_name(answer) == {"OUTPUT0": [6.0], "OUTPUT1": [2.0]}

    await flow.put(seldon_pipeline("short", _joined_with_slow("inner", 100)))
    status, answer = await flow.infer("short", body)
    assert status == 504, answer
    assert "step add" in answer["error"]
    assert "slow.outputs.OUTPUT0" in answer["error"]

    await flow.put(
        seldon_pipeline(
            "outer",
            [
                *_joined_with_slow("outer", 100)[:2],
                {
                    "name": "negate",
                    "inputs": ["double", "slow"],
                    "inputsJoinType": "outer",
                    "joinWindowMs": 100,
                },
            ],
        )
    )
    status, answer = await flow.infer("outer", body)
    assert status == 200, answer
    # negate got only double's output (the window closed before slow answered).
    assert outputs_by_name(answer) == {"OUTPUT0": [-4.0]}


async def test_asynchronous_request_on_the_input_subject(flow: Flow) -> None:
    """A request published to the pipeline's input subject (JetStream) is answered on its output
    subject under the same request id, with no gateway involved."""
    await flow.put(seldon_pipeline("asyncp", [{"name": "double"}]))
    nc = flow.gateway._nc
    assert nc is not None
    sub = await nc.subscribe(subjects.pipeline_outputs("asyncp", "req-42"))
    try:
        ack = await flow.js.publish(
            subjects.pipeline_inputs("asyncp", "req-42"),
            orjson.dumps({"id": "mine", "inputs": [tensor("INPUT0", [1.5])]}),
            headers={dataflow_stream.MSG_ID: dataflow_stream.request_msg_id("pipeline", "asyncp", "req-42")},
        )
        assert ack.stream == subjects.DATAFLOW_STREAM
        msg = await sub.next_msg(timeout=20)
    finally:
        await sub.unsubscribe()
    answer = orjson.loads(msg.data)
    assert (msg.headers or {}).get(dataflow_stream.STATUS) == "200"
    assert answer["id"] == "mine"
    assert outputs_by_name(answer) == {"OUTPUT0": [3.0]}
