"""Compiling a pipeline: references parsed once, defaults resolved, bad specs refused."""

from __future__ import annotations

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.pipeline_refs import TensorRef
from modelplane.libs.resources.types import DEFAULT_JOIN_WINDOW_MS, PipelineSpec, PipelineStep
from modelplane.services.dataflow.engine import compile_pipeline
from modelplane.services.dataflow.engine.compiled import DEFAULT_BATCH_WINDOW_MS
from tests.dataflow.engine.models import pipeline


def test_defaults_are_the_pipeline_inputs_the_last_step_and_the_default_window() -> None:
    """No inputs = the pipeline's inputs; no output = the last step; window 0 = the default."""
    compiled = pipeline("p", {"steps": [{"name": "a"}, {"name": "b", "inputs": ["a"]}]})
    assert compiled.step("a").inputs.refs == (TensorRef("p", "", "inputs"),)
    assert compiled.step("b").inputs.refs == (TensorRef("p", "a", "outputs"),)
    assert compiled.step("b").inputs.window_ms == DEFAULT_JOIN_WINDOW_MS
    assert compiled.output.join.refs == (TensorRef("p", "b", "outputs"),)
    assert compiled.models() == ("a", "b")


def test_tensor_map_keys_are_canonical_references() -> None:
    """tensorMap keys are stored in canonical form, so any spelling matches."""
    compiled = pipeline(
        "p",
        {"steps": [{"name": "a"}, {"name": "b", "inputs": ["a"], "tensorMap": {" a.outputs.OUT ": "IN"}}]},
    )
    assert compiled.step("b").tensor_map == {"a.outputs.OUT": "IN"}


def test_batch_window_zero_means_the_default_and_size_one_means_no_batching() -> None:
    """batch.windowMs 0 resolves to the default; batch.size 1 is no batching."""
    compiled = pipeline(
        "p", {"steps": [{"name": "a", "batch": {"size": 4}}, {"name": "b", "batch": {"size": 1}}]}
    )
    batch = compiled.step("a").batch
    assert batch is not None
    assert batch.window_ms == DEFAULT_BATCH_WINDOW_MS
    assert compiled.step("b").batch is None


def test_external_inputs_are_parsed_for_chaining() -> None:
    """input.externalInputs / externalTriggers are kept parsed for the worker's chaining."""
    compiled = pipeline(
        "q",
        {
            "input": {"externalInputs": ["p.outputs.OUTPUT0"], "externalTriggers": ["r.step.s.outputs"]},
            "steps": [{"name": "a"}],
        },
    )
    assert compiled.external_inputs == (TensorRef("p", "", "outputs", "OUTPUT0"),)
    assert compiled.external_triggers == (TensorRef("r", "s", "outputs"),)


def test_a_reference_to_an_unknown_step_is_refused_naming_the_field() -> None:
    """compile_pipeline raises InvalidError for a reference to a step that does not exist."""
    spec = PipelineSpec(steps=(PipelineStep("a", inputs=("nope.outputs",)),))
    with pytest.raises(InvalidError) as caught:
        compile_pipeline("p", spec)
    assert caught.value.field == "spec.steps[0].inputs[0]"
    assert "nope" in caught.value.message
