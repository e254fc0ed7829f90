"""`modelplane pipeline|graph load/status/list/unload` and `apply` against the real api App and NATS."""

from __future__ import annotations

import json
from pathlib import Path

from nats.js import JetStreamContext

from modelplane.libs import dataflow_stream, subjects
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2, state_pb2

from .harness import Cli

# Seldon's chain sample, without its `namespace: seldon-mesh` (these tests are about the
# commands; test_cli_namespaces.py runs samples in their namespace).
SELDON_PIPELINE = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: tfsimples
spec:
  steps:
    - name: tfsimple1
    - name: tfsimple2
      inputs:
      - tfsimple1
      tensorMap:
        tfsimple1.outputs.OUTPUT0: INPUT0
        tfsimple1.outputs.OUTPUT1: INPUT1
  output:
    steps:
    - tfsimple2
"""

KSERVE_GRAPH = """\
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: splitter
spec:
  nodes:
    root:
      routerType: Splitter
      steps:
      - serviceName: tfsimple1
        weight: 20
      - serviceName: tfsimple2
        weight: 80
"""


def write(tmp_path: Path, text: str, name: str = "manifest.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


async def mark_ready(js: JetStreamContext, kind: str, name: str, generation: int) -> None:
    """What a dataflow worker and the status service would write once everything runs."""
    statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    for model in ("tfsimple1", "tfsimple2"):
        await statuses.put(
            subjects.status_key("Model", model),
            state_pb2.ResourceStatus(kind="Model", name=model, state="ModelAvailable"),
        )
    dataflow = await TypedBucket.open(js, subjects.KV_DATAFLOW, state_pb2.DataflowState)
    await dataflow.put(
        subjects.status_key(kind, name),
        state_pb2.DataflowState(kind=kind, name=name, generation=generation, state="Ready"),
    )


async def test_pipeline_load_status_list_unload(run_cli: Cli, tmp_path: Path, js: JetStreamContext) -> None:
    """A Seldon Pipeline loads, shows state and both conditions, turns Ready, lists, and unloads."""
    loaded = await run_cli("pipeline", "load", "-f", str(write(tmp_path, SELDON_PIPELINE)))
    assert loaded.exit_code == 0, loaded.output
    assert loaded.output.strip() == "pipeline/tfsimples created"
    bucket = await TypedBucket.open(js, subjects.KV_PIPELINES, resources_pb2.Pipeline)
    assert await bucket.try_get("tfsimples") is not None

    shown = await run_cli("pipeline", "status", "tfsimples")
    assert shown.exit_code == 0, shown.output
    assert "pipeline/tfsimples: PipelineCreating" in shown.output
    assert "PipelineReady: False (waiting for a dataflow worker)" in shown.output
    assert "ModelsReady: False (model tfsimple1 is not found (no such model)" in shown.output
    assert "models available: 0/2" in shown.output

    waited = await run_cli("pipeline", "status", "tfsimples", "-w", "Ready", "--timeout", "0")
    assert waited.exit_code == 1
    assert (
        "timed out after 0s waiting for pipeline/tfsimples to be Ready: it is PipelineCreating"
        in waited.output
    )

    await mark_ready(js, "Pipeline", "tfsimples", 1)
    ready = await run_cli("pipeline", "status", "tfsimples", "-w", "PipelineReady", "--timeout", "30")
    assert ready.exit_code == 0, ready.output
    assert "pipeline/tfsimples: PipelineReady" in ready.output
    assert "ModelsReady: True" in ready.output

    as_json = await run_cli("pipeline", "status", "tfsimples", "-o", "json")
    data = json.loads(as_json.output)
    assert data["state"] == "PipelineReady"
    assert {c["type"] for c in data["conditions"]} == {"PipelineReady", "ModelsReady"}
    every = await run_cli("pipeline", "status", "-o", "json")
    assert [s["name"] for s in json.loads(every.output)["items"]] == ["tfsimples"]

    listed = await run_cli("pipeline", "list")
    assert listed.exit_code == 0, listed.output
    header, row = listed.output.strip().splitlines()
    assert header.split() == ["NAME", "STATE", "MODELS", "GENERATION", "REASON"]
    assert row.split()[:4] == ["tfsimples", "PipelineReady", "2/2", "1"]

    unloaded = await run_cli("pipeline", "unload", "tfsimples")
    assert unloaded.exit_code == 0, unloaded.output
    assert unloaded.output.strip() == "pipeline/tfsimples deleted"
    assert await bucket.try_get("tfsimples") is None
    # The worker's record is still there: the pipeline is terminating until the worker lets go.
    terminating = await run_cli("pipeline", "status", "tfsimples")
    assert "pipeline/tfsimples: PipelineTerminating" in terminating.output


async def test_invalid_pipeline_exits_2_naming_the_field(run_cli: Cli, tmp_path: Path) -> None:
    """A reference to a missing step is refused with one line naming the field and the step."""
    bad = SELDON_PIPELINE.replace("      - tfsimple1\n", "      - tfsimple9\n")
    result = await run_cli("pipeline", "load", "-f", str(write(tmp_path, bad)))
    assert result.exit_code == 2
    assert (
        "spec.steps[1].inputs[0]: step tfsimple2: reference 'tfsimple9' names step 'tfsimple9'"
        in result.output
    )
    assert "Traceback" not in result.output


async def test_load_refuses_other_kinds(run_cli: Cli, tmp_path: Path) -> None:
    """`pipeline load` takes only Pipelines and `graph load` only InferenceGraphs (exit 2)."""
    result = await run_cli("pipeline", "load", "-f", str(write(tmp_path, KSERVE_GRAPH)))
    assert result.exit_code == 2
    assert "takes Pipeline manifests, got 'InferenceGraph'" in result.output
    result = await run_cli("graph", "load", "-f", str(write(tmp_path, SELDON_PIPELINE)))
    assert result.exit_code == 2
    assert "takes InferenceGraph manifests, got 'Pipeline'" in result.output


async def test_graph_load_status_list_unload(run_cli: Cli, tmp_path: Path, js: JetStreamContext) -> None:
    """A KServe InferenceGraph loads, reports the pipeline states, lists and unloads."""
    loaded = await run_cli("graph", "load", "-f", str(write(tmp_path, KSERVE_GRAPH)))
    assert loaded.exit_code == 0, loaded.output
    assert loaded.output.strip() == "inferencegraph/splitter created"
    shown = await run_cli("graph", "status", "splitter")
    assert "inferencegraph/splitter: PipelineCreating" in shown.output
    await mark_ready(js, "InferenceGraph", "splitter", 1)
    ready = await run_cli("graph", "status", "splitter", "-w", "ready", "--timeout", "30")
    assert ready.exit_code == 0, ready.output
    assert "inferencegraph/splitter: PipelineReady" in ready.output
    listed = await run_cli("graph", "list")
    assert listed.output.strip().splitlines()[1].split()[:3] == ["splitter", "PipelineReady", "2/2"]
    unloaded = await run_cli("graph", "unload", "splitter")
    assert unloaded.output.strip() == "inferencegraph/splitter deleted"


async def test_generic_apply_and_delete_take_both_kinds(run_cli: Cli, tmp_path: Path) -> None:
    """`modelplane apply` names pipeline/<name> and inferencegraph/<name>; `delete -f` removes them."""
    path = write(tmp_path, SELDON_PIPELINE + "---\n" + KSERVE_GRAPH)
    applied = await run_cli("apply", "-f", str(path))
    assert applied.exit_code == 0, applied.output
    assert applied.output.strip().splitlines() == [
        "pipeline/tfsimples created",
        "inferencegraph/splitter created",
    ]
    deleted = await run_cli("delete", "-f", str(path))
    assert deleted.exit_code == 0, deleted.output
    assert deleted.output.strip().splitlines() == [
        "pipeline/tfsimples deleted",
        "inferencegraph/splitter deleted",
    ]


async def test_pipeline_inspect_prints_each_steps_last_messages(
    run_cli: Cli, tmp_path: Path, js: JetStreamContext
) -> None:
    """`pipeline inspect` prints the latest request's messages, one line per step and port."""
    assert (await run_cli("pipeline", "load", "-f", str(write(tmp_path, SELDON_PIPELINE)))).exit_code == 0
    await dataflow_stream.ensure_stream(js)
    await js.publish(subjects.pipeline_inputs("tfsimples", "abc"), b'{"inputs":[]}')
    await js.publish(
        subjects.pipeline_steps("tfsimples", "abc"),
        json.dumps([{"step": "tfsimple1", "port": "outputs", "message": {"outputs": [1]}}]).encode(),
    )
    shown = await run_cli("pipeline", "inspect", "tfsimples")
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines() == [
        "request abc",
        'tfsimples.inputs\t{"inputs":[]}',
        'tfsimple1.outputs\t{"outputs":[1]}',
    ]
    as_json = await run_cli("pipeline", "inspect", "tfsimples", "--step", "tfsimple1", "-o", "json")
    assert json.loads(as_json.output)["records"][0]["message"] == {"outputs": [1]}
    missing = await run_cli("pipeline", "inspect", "tfsimples", "--step", "nope")
    assert missing.exit_code == 2
    assert "no step 'nope'" in missing.output
