"""Pipeline manifests (native and Seldon v2): Seldon's samples, validation rules, round trips."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources import convert
from modelplane.libs.resources.manifests import parse_manifest, to_manifest
from modelplane.libs.resources.types import Pipeline, PipelineBatch, PipelineStep

SELDON = "mlops.seldon.io/v1alpha1"
NATIVE = "modelplane.io/v1alpha1"

# Seldon v2's pipeline samples, as users have them.
SAMPLES = {
    "chain": """
metadata: {name: tfsimples}
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
""",
    "join": """
metadata: {name: join}
spec:
  steps:
    - name: tfsimple1
    - name: tfsimple2
    - name: tfsimple3
      inputs:
      - tfsimple1.outputs.OUTPUT0
      - tfsimple2.outputs.OUTPUT1
      tensorMap:
        tfsimple1.outputs.OUTPUT0: INPUT0
        tfsimple2.outputs.OUTPUT1: INPUT1
  output:
    steps:
    - tfsimple3
""",
    "conditional": """
metadata: {name: tfsimple-conditional}
spec:
  steps:
  - name: conditional
  - name: mul10
    inputs:
    - conditional.outputs.OUTPUT0
    tensorMap:
      conditional.outputs.OUTPUT0: INPUT
  - name: add10
    inputs:
    - conditional.outputs.OUTPUT1
    tensorMap:
      conditional.outputs.OUTPUT1: INPUT
  output:
    steps:
    - mul10
    - add10
    stepsJoin: any
""",
    "trigger-joins": """
metadata: {name: trigger-joins}
spec:
  steps:
  - name: mul10
    inputs:
    - trigger-joins.inputs.INPUT
    triggers:
    - trigger-joins.inputs.ok1
    - trigger-joins.inputs.ok2
    triggersJoinType: any
  - name: add10
    inputs:
    - trigger-joins.inputs.INPUT
    triggers:
    - trigger-joins.inputs.ok3
  output:
    steps:
    - mul10
    - add10
    stepsJoin: any
""",
    "batch": """
metadata: {name: batch}
spec:
  steps:
    - name: tfsimple1
      batch:
        size: 2
        windowMs: 500
  output:
    steps:
    - tfsimple1
""",
    "chained": """
metadata: {name: tfsimple-extended}
spec:
  input:
    externalInputs:
      - tfsimple.outputs
    tensorMap:
      tfsimple.outputs.OUTPUT0: INPUT0
      tfsimple.outputs.OUTPUT1: INPUT1
  steps:
    - name: tfsimple2
  output:
    steps:
    - tfsimple2
""",
    "cycle": """
metadata: {name: counter-pipeline}
spec:
  allowCycles: true
  maxStepRevisits: 100
  steps:
    - name: counter
      inputs:
      - counter-pipeline.inputs
      - identity-loop.outputs
      inputsJoinType: any
    - name: identity-loop
      inputs:
      - counter.outputs.continue
    - name: identity-output
      inputs:
      - counter.outputs.stop
  output:
    steps:
    - identity-output
""",
}


def sample(name: str, api: str = SELDON) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(SAMPLES[name])
    return {"apiVersion": api, "kind": "Pipeline", **doc}


def pipeline_doc(api: str = NATIVE, name: str = "p", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"steps": [{"name": "a"}, {"name": "b", "inputs": ["a"]}]}
    body.update(spec)
    return {"apiVersion": api, "kind": "Pipeline", "metadata": {"name": name}, "spec": body}


def refused(doc: dict[str, Any]) -> InvalidError:
    with pytest.raises(InvalidError) as caught:
        parse_manifest(doc)
    return caught.value


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_seldon_samples_parse_and_round_trip(name: str) -> None:
    """Every Seldon sample parses; its native manifest and its protobuf read back equal."""
    pipeline = parse_manifest(sample(name))
    assert isinstance(pipeline, Pipeline)
    assert pipeline.meta.imported_from == "mlops.seldon.io/v1alpha1/Pipeline"
    again = parse_manifest(to_manifest(pipeline))
    assert again.spec == pipeline.spec
    assert convert.pipeline_from_pb(convert.pipeline_to_pb(pipeline)) == pipeline
    assert convert.resource_from_pb(convert.resource_to_pb(pipeline)) == pipeline


def test_sample_fields_are_kept_as_written() -> None:
    """References, tensorMap, joins and batch reach the domain types unchanged."""
    chain = parse_manifest(sample("chain"))
    assert isinstance(chain, Pipeline)
    assert chain.spec.steps[1] == PipelineStep(
        name="tfsimple2",
        inputs=("tfsimple1",),
        tensor_map={"tfsimple1.outputs.OUTPUT0": "INPUT0", "tfsimple1.outputs.OUTPUT1": "INPUT1"},
    )
    assert chain.spec.models() == ("tfsimple1", "tfsimple2")
    conditional = parse_manifest(sample("conditional"))
    assert isinstance(conditional, Pipeline)
    assert conditional.spec.output is not None
    assert conditional.spec.output.steps_join == "any"
    triggers = parse_manifest(sample("trigger-joins"))
    assert isinstance(triggers, Pipeline)
    assert triggers.spec.steps[0].triggers_join_type == "any"
    batch = parse_manifest(sample("batch"))
    assert isinstance(batch, Pipeline)
    assert batch.spec.steps[0].batch == PipelineBatch(size=2, window_ms=500)
    chained = parse_manifest(sample("chained"))
    assert isinstance(chained, Pipeline)
    assert chained.spec.input is not None
    assert chained.spec.input.external_inputs == ("tfsimple.outputs",)
    cycle = parse_manifest(sample("cycle"))
    assert isinstance(cycle, Pipeline)
    assert (cycle.spec.allow_cycles, cycle.spec.max_step_revisits) == (True, 100)


def test_seldon_ignores_unknown_fields_native_refuses_them() -> None:
    """Seldon's dataflow section is ignored; the native form names an unknown field."""
    doc = pipeline_doc(SELDON, dataflow={"cleanTopicsOnDelete": True})
    doc["spec"]["steps"][0]["somethingNew"] = 1
    assert isinstance(parse_manifest(doc), Pipeline)
    error = refused(pipeline_doc(dataflow={"cleanTopicsOnDelete": True}))
    assert (error.field, error.message) == ("spec.dataflow", "unknown field")
    step_typo = pipeline_doc(steps=[{"name": "a", "input": ["x"]}])
    assert refused(step_typo).field == "spec.steps[0].input"


def test_references_are_stripped_of_whitespace() -> None:
    """A reference written with spaces is kept without them."""
    pipeline = parse_manifest(pipeline_doc(steps=[{"name": "a"}, {"name": "b", "inputs": [" a.outputs "]}]))
    assert isinstance(pipeline, Pipeline)
    assert pipeline.spec.steps[1].inputs == ("a.outputs",)


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({"steps": []}, "spec.steps", "at least one step"),
        ({"steps": [{"name": "a"}, {"name": "a"}]}, "spec.steps[1].name", "'a' is repeated"),
        ({"steps": [{"name": "p"}]}, "spec.steps[0].name", "has the pipeline's name"),
        ({"steps": [{"name": "Bad_Model"}]}, "spec.steps[0].name", "not a valid model name"),
        (
            {"steps": [{"name": "a"}, {"name": "b", "inputs": ["a..outputs"]}]},
            "spec.steps[1].inputs[0]",
            "step b: bad reference 'a..outputs': empty reference or empty part between dots",
        ),
        (
            {"steps": [{"name": "a"}, {"name": "b", "inputs": ["a.output"]}]},
            "spec.steps[1].inputs[0]",
            "step b: bad reference 'a.output': expected 'inputs' or 'outputs'",
        ),
        (
            {"steps": [{"name": "a"}, {"name": "b", "inputs": ["p.outputs"]}]},
            "spec.steps[1].inputs[0]",
            "own outputs cannot feed its steps",
        ),
        (
            {"steps": [{"name": "a"}, {"name": "b", "inputs": ["c.outputs"]}]},
            "spec.steps[1].inputs[0]",
            "step b: reference 'c.outputs' names step 'c', which is not a step of pipeline p (steps: a, b)",
        ),
        (
            {"steps": [{"name": "a"}, {"name": "b", "triggers": ["zz"]}]},
            "spec.steps[1].triggers[0]",
            "names step 'zz'",
        ),
        (
            {"steps": [{"name": "a"}, {"name": "b", "inputs": ["a"], "tensorMap": {"a.outputs": "X"}}]},
            "spec.steps[1].tensorMap[a.outputs]",
            "step b: tensorMap key 'a.outputs' must name one tensor",
        ),
        (
            {"steps": [{"name": "a"}, {"name": "b", "tensorMap": {"c.outputs.T": "X"}}]},
            "spec.steps[1].tensorMap[c.outputs.T]",
            "names step 'c'",
        ),
        (
            {"steps": [{"name": "a"}, {"name": "b", "inputs": ["a.outputs.X"], "triggers": ["a.outputs.Y"]}]},
            "spec.steps[1].triggers[0]",
            "step b: step 'a' is both an input and a trigger of this step",
        ),
        (
            {"steps": [{"name": "a", "inputs": ["b"]}, {"name": "b", "inputs": ["a"]}]},
            "spec.steps",
            "cycle a -> b -> a",
        ),
        (
            {
                "steps": [
                    {"name": "a", "inputs": ["c"]},
                    {"name": "b", "inputs": ["a"]},
                    {"name": "c", "triggers": ["b.outputs.ok"]},
                ]
            },
            "spec.steps",
            "cycle a -> b -> c -> a",
        ),
        ({"steps": [{"name": "a", "inputs": ["a"]}]}, "spec.steps", "cycle a -> a"),
        ({"maxStepRevisits": -1}, "spec.maxStepRevisits", "must be >= 0, got -1"),
        (
            {"steps": [{"name": "a", "inputsJoinType": "left"}]},
            "spec.steps[0].inputsJoinType",
            "must be one of inner, outer, any, got 'left'",
        ),
        (
            {"steps": [{"name": "a", "triggersJoinType": "all"}]},
            "spec.steps[0].triggersJoinType",
            "must be one of inner, outer, any",
        ),
        (
            {"steps": [{"name": "a", "joinWindowMs": -5}]},
            "spec.steps[0].joinWindowMs",
            "must be >= 0, got -5",
        ),
        ({"steps": [{"name": "a", "batch": {"size": -1}}]}, "spec.steps[0].batch.size", "must be >= 0"),
        (
            {"steps": [{"name": "a", "batch": {"windowMs": -1}}]},
            "spec.steps[0].batch.windowMs",
            "must be >= 0",
        ),
        ({"output": {"steps": ["zz"]}}, "spec.output.steps[0]", "output: reference 'zz' names step 'zz'"),
        ({"output": {"steps": ["a"], "stepsJoin": "some"}}, "spec.output.stepsJoin", "must be one of"),
        ({"output": {"joinWindowMs": -1}}, "spec.output.joinWindowMs", "must be >= 0"),
        (
            {"output": {"tensorMap": {"b.outputs": "Y"}}},
            "spec.output.tensorMap[b.outputs]",
            "output: tensorMap key 'b.outputs' must name one tensor",
        ),
        (
            {"input": {"externalInputs": ["other"]}},
            "spec.input.externalInputs[0]",
            "input: bad reference 'other': expected '<pipeline>.inputs|outputs[.TENSOR]'",
        ),
        (
            {"input": {"externalTriggers": ["other.step.s"]}},
            "spec.input.externalTriggers[0]",
            "input: bad reference 'other.step.s'",
        ),
        (
            {"input": {"externalInputs": ["p.outputs"]}},
            "spec.input.externalInputs[0]",
            "cannot chain from itself",
        ),
        ({"input": {"joinType": "x"}}, "spec.input.joinType", "must be one of"),
        ({"input": {"triggersJoinType": "x"}}, "spec.input.triggersJoinType", "must be one of"),
        ({"input": {"joinWindowMs": -1}}, "spec.input.joinWindowMs", "must be >= 0"),
        (
            {"input": {"tensorMap": {"other.outputs": "X"}}},
            "spec.input.tensorMap[other.outputs]",
            "tensorMap key 'other.outputs' must name one tensor",
        ),
        ({"steps": [{"inputs": ["x"]}]}, "spec.steps[0].name", "is required"),
        ({"steps": ["a"]}, "spec.steps[0]", "must be a mapping"),
    ],
)
def test_invalid_pipeline_names_the_field_and_reason(spec: dict[str, Any], field: str, reason: str) -> None:
    """Each of Seldon's rules (and our bounds) fails naming the field path and the reason."""
    error = refused(pipeline_doc(**spec))
    assert error.field == field
    assert reason in error.message


def test_cycles_are_accepted_with_allow_cycles() -> None:
    """The same two-step cycle is valid once allowCycles is set."""
    steps: list[dict[str, Any]] = [
        {"name": "a", "inputs": ["p.inputs", "b"], "inputsJoinType": "any"},
        {"name": "b", "inputs": ["a"]},
    ]
    assert refused(pipeline_doc(steps=steps)).field == "spec.steps"
    pipeline = parse_manifest(pipeline_doc(steps=steps, allowCycles=True, maxStepRevisits=3))
    assert isinstance(pipeline, Pipeline)
    assert pipeline.spec.max_step_revisits == 3


def test_seldon_defines_no_inference_graph_and_kserve_no_pipeline() -> None:
    """Each apiVersion takes only its own kinds (exit naming the kind)."""
    doc = {**pipeline_doc(), "apiVersion": "serving.kserve.io/v1alpha1"}
    error = refused(doc)
    assert error.field == "kind"
    assert "supported: InferenceGraph" in error.message
