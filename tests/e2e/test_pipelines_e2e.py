"""Pipelines and InferenceGraphs through the whole stack: a real `modelplane up` (api, scheduler,
placement agent with a real MLServer replica, storage, status, gateway, dataflow), models applied
as Model resources and placed by the scheduler, then driven as a user would: the CLI, plain HTTP
and tritonclient against the gateway.

Seldon's conditional pipeline: ``router`` emits its input as OUTPUT0 (sum >= 0) or OUTPUT1 (sum <
0); ``double`` reads OUTPUT0, ``negate`` reads OUTPUT1; the pipeline answers with whichever
branch ran (stepsJoin any). The models are real MLServer custom runtimes
(tests/helpers/pipeline_models.py) served from ``file://`` folders.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from tests.e2e.stack import UpProcess, wait_until
from tests.helpers.pipeline_models import write_pipeline_models

pytestmark = pytest.mark.e2e

MODELS = ("router", "double", "negate")

MODEL = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata:
  name: {name}
spec:
  storageUri: file://{path}
  requirements:
  - python
"""

PIPELINE = "branch"

# Seldon's conditional pipeline, unchanged in form (mlops.seldon.io/v1alpha1).
CONDITIONAL_PIPELINE = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: branch
spec:
  steps:
  - name: router
  - name: double
    inputs:
    - router.outputs.OUTPUT0
  - name: negate
    inputs:
    - router.outputs.OUTPUT1
  output:
    steps:
    - double
    - negate
    stepsJoin: any
"""

GRAPH = "twice"

# KServe's Sequence: double, then negate on double's answer.
SEQUENCE_GRAPH = """\
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: twice
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
      - serviceName: double
        name: first
      - serviceName: negate
        name: second
        data: $response
"""

POSITIVE = [1.0, 2.0]
NEGATIVE = [-1.0, -3.0]
# What the pipeline answers: the router sends a positive input to double, a negative one to negate.
EXPECTED = {"positive": [2.0, 4.0], "negative": [1.0, 3.0]}


def v2_body(values: list[float]) -> dict[str, Any]:
    return {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [len(values)], "data": values}]}


def outputs_by_name(answer: dict[str, Any]) -> dict[str, list[Any]]:
    return {t["name"]: t["data"] for t in answer["outputs"]}


def post_json(url: str, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200
        answer: dict[str, Any] = json.loads(resp.read())
    return answer


def load_models(stack: UpProcess, tmp_path: Path) -> None:
    """Write the models into their own folders and load them as Model resources (waits)."""
    args: list[str] = []
    for name in MODELS:
        write_pipeline_models(tmp_path / "artifacts", (name,))
        manifest = tmp_path / f"{name}.yaml"
        manifest.write_text(MODEL.format(name=name, path=tmp_path / "artifacts" / name))
        args += ["-f", str(manifest)]
    loaded = stack.cli("model", "load", *args, "--timeout", "180", timeout=210)
    assert loaded.code == 0, f"{loaded}\n{stack.log_tail()}"
    for name in MODELS:
        ready = stack.cli("model", "status", name, "-w", "ModelAvailable", "--timeout", "60", timeout=90)
        assert ready.code == 0, f"{ready}\n{stack.log_tail()}"


def apply(stack: UpProcess, tmp_path: Path, group: str, name: str, manifest: str) -> None:
    """`<group> load -f` a manifest, then `<group> status -w PipelineReady`."""
    path = tmp_path / f"{group}-{name}.yaml"
    path.write_text(manifest)
    loaded = stack.cli(group, "load", "-f", str(path))
    assert loaded.code == 0, loaded
    ready = stack.cli(group, "status", name, "-w", "PipelineReady", "--timeout", "120", timeout=150)
    assert ready.code == 0, f"{ready}\n{stack.log_tail()}"


def status_json(stack: UpProcess, group: str, name: str) -> dict[str, Any]:
    shown = stack.cli(group, "status", name, "-o", "json")
    assert shown.code == 0, shown
    found: dict[str, Any] = json.loads(shown.out)
    return found


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions", [])}


def tritonclient_http_infer(stack: UpProcess, values: list[float]) -> list[float]:
    client = triton_http.InferenceServerClient(url=f"127.0.0.1:{stack.ports.gateway_http}")
    inp = triton_http.InferInput("INPUT0", [len(values)], "FP32")
    # JSON tensors: binary tensors are refused for pipelines (the engine works on V2 JSON).
    inp.set_data_from_numpy(np.array(values, dtype=np.float32), binary_data=False)
    out = triton_http.InferRequestedOutput("OUTPUT0", binary_data=False)
    result = client.infer(f"{PIPELINE}.pipeline", inputs=[inp], outputs=[out])
    return [float(v) for v in np.asarray(result.as_numpy("OUTPUT0")).flatten()]


def tritonclient_grpc_infer(stack: UpProcess, values: list[float]) -> list[float]:
    client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{stack.ports.gateway_grpc}")
    inp = triton_grpc.InferInput("INPUT0", [len(values)], "FP32")
    inp.set_data_from_numpy(np.array(values, dtype=np.float32))
    result = client.infer(f"{PIPELINE}.pipeline", inputs=[inp])
    return [float(v) for v in np.asarray(result.as_numpy("OUTPUT0")).flatten()]


def serve_conditional_pipeline(stack: UpProcess, tmp_path: Path) -> None:
    """Load the models, then the pipeline; it goes PipelineReady with both conditions true."""
    load_models(stack, tmp_path)
    apply(stack, tmp_path, "pipeline", PIPELINE, CONDITIONAL_PIPELINE)
    shown = stack.cli("pipeline", "status", PIPELINE)
    assert shown.code == 0, shown
    assert "PipelineReady: True" in shown.out, shown.out
    assert "ModelsReady: True" in shown.out, shown.out
    ready = status_json(stack, "pipeline", PIPELINE)
    assert ready["state"] == "PipelineReady", ready
    assert {t: c.get("status", False) for t, c in conditions(ready).items()} == {
        "PipelineReady": True,
        "ModelsReady": True,
    }


def test_conditional_pipeline_and_graph_with_the_cli(stack: UpProcess, tmp_path: Path) -> None:
    """Models placed by the scheduler serve Seldon's conditional pipeline (CLI and plain HTTP) and
    a KServe Sequence graph through the gateway; inspect shows the steps' messages; a model
    unloaded under them takes both out of PipelineReady naming it; unloading the pipeline lists it
    no more."""
    serve_conditional_pipeline(stack, tmp_path)

    # The CLI: each sign takes its own branch.
    for sign, values in (("positive", POSITIVE), ("negative", NEGATIVE)):
        answered = stack.cli("pipeline", "infer", PIPELINE, json.dumps(v2_body(values)))
        assert answered.code == 0, f"{answered}\n{stack.log_tail()}"
        assert outputs_by_name(json.loads(answered.out)) == {"OUTPUT0": EXPECTED[sign]}, answered.out

    # Plain HTTP: the model URL with the .pipeline suffix, and Seldon's seldon-model header.
    gateway = f"http://127.0.0.1:{stack.ports.gateway_http}"
    for sign, values in (("positive", POSITIVE), ("negative", NEGATIVE)):
        answer = post_json(f"{gateway}/v2/models/{PIPELINE}.pipeline/infer", v2_body(values))
        assert outputs_by_name(answer) == {"OUTPUT0": EXPECTED[sign]}, answer
        answer = post_json(
            f"{gateway}/v2/models/{PIPELINE}/infer",
            v2_body(values),
            headers={"seldon-model": f"{PIPELINE}.pipeline"},
        )
        assert outputs_by_name(answer) == {"OUTPUT0": EXPECTED[sign]}, answer

    # The last request (negative: router -> negate) as the dataflow stream recorded it.
    inspected = stack.cli("pipeline", "inspect", PIPELINE, "-o", "json")
    assert inspected.code == 0, f"{inspected}\n{stack.log_tail()}"
    records = {(r["step"], r["port"]): r["message"] for r in json.loads(inspected.out)["records"]}
    # The router put the negative input out on OUTPUT1 only; negate answered it; double never ran.
    assert outputs_by_name(records[("router", "outputs")]) == {"OUTPUT1": NEGATIVE}, inspected.out
    assert outputs_by_name(records[("negate", "outputs")]) == {"OUTPUT0": EXPECTED["negative"]}, inspected.out
    assert ("negate", "inputs") in records, inspected.out
    assert not any(step == "double" for step, _ in records), inspected.out
    text = stack.cli("pipeline", "inspect", PIPELINE)
    assert text.code == 0, text
    assert "router.outputs\t" in text.out, text.out
    assert "negate.outputs\t" in text.out, text.out

    # A KServe Sequence graph over the same models: -(2x).
    apply(stack, tmp_path, "graph", GRAPH, SEQUENCE_GRAPH)
    answer = post_json(f"{gateway}/graphs/{GRAPH}", v2_body(POSITIVE))
    assert outputs_by_name(answer) == {"OUTPUT0": [-2.0, -4.0]}, answer

    # negate unloaded: neither the pipeline nor the graph is ready, and ModelsReady says why.
    unloaded = stack.cli("model", "unload", "negate")
    assert unloaded.code == 0, unloaded
    for group, name in (("pipeline", PIPELINE), ("graph", GRAPH)):

        def not_ready(group: str = group, name: str = name) -> bool:
            state: str = status_json(stack, group, name)["state"]
            return state != "PipelineReady"

        wait_until(not_ready, 60, f"{group} {name} to leave PipelineReady")
        models_ready = conditions(status_json(stack, group, name))["ModelsReady"]
        assert not models_ready.get("status", False), models_ready
        assert "negate" in models_ready["reason"], models_ready

    # Unloaded, the pipeline is listed no more.
    removed = stack.cli("pipeline", "unload", PIPELINE)
    assert removed.code == 0, removed

    def unlisted() -> bool:
        listed = stack.cli("pipeline", "list")
        assert listed.code == 0, listed
        return PIPELINE not in listed.out.split()

    wait_until(unlisted, 60, f"pipeline {PIPELINE} to leave `pipeline list`")


def test_conditional_pipeline_with_tritonclient(stack: UpProcess, tmp_path: Path) -> None:
    """tritonclient calls `<p>.pipeline` through the gateway as it calls a model: over HTTP (JSON
    tensors) and over gRPC (raw tensors in, so raw tensors out, as MLServer and Triton answer)."""
    serve_conditional_pipeline(stack, tmp_path)
    for sign, values in (("positive", POSITIVE), ("negative", NEGATIVE)):
        assert tritonclient_http_infer(stack, values) == EXPECTED[sign]
    for sign, values in (("positive", POSITIVE), ("negative", NEGATIVE)):
        assert tritonclient_grpc_infer(stack, values) == EXPECTED[sign]
