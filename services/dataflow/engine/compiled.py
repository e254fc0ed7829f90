"""A pipeline parsed once for running: references as ``TensorRef``, windows resolved.

``compile_pipeline`` validates the spec with Seldon's rules (``pipeline_validation``) and parses
every reference, so the engine never meets a bad one at request time. Sources are what a
reference points at: the pipeline's own inputs (``("", "inputs")``) or a step's inputs/outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.pipeline_refs import (
    BadReference,
    TensorRef,
    parse_external_reference,
    parse_reference,
)
from modelplane.libs.resources.pipeline_validation import validate_pipeline
from modelplane.libs.resources.types import DEFAULT_JOIN_WINDOW_MS, JOIN_TYPES, PipelineSpec

# (step, port); the step is "" for the pipeline's own inputs.
Source = tuple[str, str]
PIPELINE_INPUTS: Final[Source] = ("", "inputs")
# A batch window of 0 means this (Seldon leaves it unspecified).
DEFAULT_BATCH_WINDOW_MS: Final = 1000


def source_of(ref: TensorRef) -> Source:
    return (ref.step, ref.port)


def window_ms(value: int) -> int:
    return value if value > 0 else DEFAULT_JOIN_WINDOW_MS


@dataclass(frozen=True, slots=True)
class Join:
    """References combined by one join type within one window."""

    refs: tuple[TensorRef, ...]
    join_type: str
    window_ms: int


@dataclass(frozen=True, slots=True)
class Batching:
    size: int
    window_ms: int


@dataclass(frozen=True, slots=True)
class CompiledStep:
    name: str
    # Seldon: the step name is the name of the model it calls.
    model: str
    inputs: Join
    triggers: Join
    # canonical reference of one tensor (``a.outputs.OUTPUT0``) -> the name the model receives
    tensor_map: Mapping[str, str] = field(default_factory=dict)
    batch: Batching | None = None

    def upstream(self) -> tuple[str, ...]:
        """The steps whose values this step waits for (inputs and triggers), each once."""
        return tuple(dict.fromkeys(r.step for r in (*self.inputs.refs, *self.triggers.refs) if r.step))


@dataclass(frozen=True, slots=True)
class CompiledOutput:
    join: Join
    tensor_map: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CompiledPipeline:
    name: str
    spec: PipelineSpec
    steps: tuple[CompiledStep, ...]
    output: CompiledOutput
    # Chaining (``spec.input``): references into other pipelines; the dataflow worker turns
    # their events into requests of this pipeline, the engine never sees them.
    external_inputs: tuple[TensorRef, ...] = ()
    external_triggers: tuple[TensorRef, ...] = ()
    _by_name: Mapping[str, CompiledStep] = field(default_factory=dict, repr=False)

    def step(self, name: str) -> CompiledStep:
        return self._by_name[name]

    def models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(step.model for step in self.steps))


def _ref(text: str, pipeline: str, where: str) -> TensorRef:
    try:
        return parse_reference(text, pipeline)
    except BadReference as exc:  # validate_pipeline catches these first; kept for safety
        raise InvalidError(str(exc), field=where) from None


def _tensor_map(mapping: Mapping[str, str], pipeline: str, where: str) -> dict[str, str]:
    return {
        _ref(key, pipeline, f"{where}[{key}]").text(pipeline): value.strip() for key, value in mapping.items()
    }


def compile_pipeline(name: str, spec: PipelineSpec) -> CompiledPipeline:
    """Validate ``spec`` and parse it for the engine; raises ``InvalidError`` naming the field."""
    validate_pipeline(name, spec)
    steps: list[CompiledStep] = []
    for index, step in enumerate(spec.steps):
        where = f"spec.steps[{index}]"
        inputs = tuple(_ref(t, name, f"{where}.inputs") for t in step.inputs) or (
            TensorRef(name, "", "inputs"),
        )
        triggers = tuple(_ref(t, name, f"{where}.triggers") for t in step.triggers)
        window = window_ms(step.join_window_ms)
        batch = None
        if step.batch is not None and step.batch.size > 1:
            batch = Batching(step.batch.size, step.batch.window_ms or DEFAULT_BATCH_WINDOW_MS)
        steps.append(
            CompiledStep(
                name=step.name,
                model=step.name,
                inputs=Join(inputs, step.inputs_join_type, window),
                triggers=Join(triggers, step.triggers_join_type, window),
                tensor_map=_tensor_map(step.tensor_map, name, f"{where}.tensorMap"),
                batch=batch,
            )
        )
    out = spec.output
    if out is not None and out.steps:
        refs = tuple(_ref(t, name, "spec.output.steps") for t in out.steps)
    else:
        refs = (TensorRef(name, spec.steps[-1].name, "outputs"),)
    output = CompiledOutput(
        join=Join(
            refs,
            out.steps_join if out is not None else JOIN_TYPES[0],
            window_ms(out.join_window_ms if out is not None else 0),
        ),
        tensor_map=_tensor_map(out.tensor_map, name, "spec.output.tensorMap") if out is not None else {},
    )
    given = spec.input
    try:
        external_inputs = tuple(parse_external_reference(t) for t in given.external_inputs) if given else ()
        external_triggers = (
            tuple(parse_external_reference(t) for t in given.external_triggers) if given else ()
        )
    except BadReference as exc:
        raise InvalidError(str(exc), field="spec.input") from None
    return CompiledPipeline(
        name=name,
        spec=spec,
        steps=tuple(steps),
        output=output,
        external_inputs=external_inputs,
        external_triggers=external_triggers,
        _by_name={step.name: step for step in steps},
    )
