"""Seldon v2's validation of a Pipeline, on the domain types.

Rules (Seldon's list, plus the bounds of our numeric fields): at least one step; step names are
valid model names, unique, and not the pipeline's name; every reference parses
(``pipeline_refs``) and names a step of the pipeline; tensorMap keys name one tensor; a step does
not use the same step as an input and as a trigger; no cycles unless ``allowCycles``; join types
are known; windows, batch sizes and ``maxStepRevisits`` are >= 0.

Each failure is an ``InvalidError`` whose ``field`` is the manifest path
(``spec.steps[1].inputs[0]``) and whose message names the step, the reference and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.cycles import find_cycle
from modelplane.libs.resources.pipeline_refs import (
    BadReference,
    TensorRef,
    parse_external_reference,
    parse_reference,
)
from modelplane.libs.resources.types import (
    JOIN_TYPES,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    PipelineBatch,
    PipelineSpec,
    PipelineStep,
)


def validate_pipeline(name: str, spec: PipelineSpec) -> None:
    """Raise ``InvalidError`` (naming the field) at the first rule ``spec`` breaks."""
    if not spec.steps:
        raise InvalidError("a pipeline needs at least one step", field="spec.steps")
    steps = _step_names(name, spec.steps)
    # Downstream edges (upstream step -> the steps it feeds), so a cycle reads in dataflow order.
    edges: dict[str, list[str]] = {step.name: [] for step in spec.steps}
    for index, step in enumerate(spec.steps):
        for upstream in _check_step(name, steps, step, f"spec.steps[{index}]"):
            edges[upstream].append(step.name)
    if spec.max_step_revisits < 0:
        raise InvalidError(f"must be >= 0, got {spec.max_step_revisits}", field="spec.maxStepRevisits")
    if not spec.allow_cycles:
        cycle = find_cycle(edges)
        if cycle:
            raise InvalidError(
                f"the steps form a cycle {' -> '.join(cycle)}; set allowCycles (and maxStepRevisits) "
                "to run it",
                field="spec.steps",
            )
    if spec.input is not None:
        given = spec.input
        for label, refs in (
            ("externalInputs", given.external_inputs),
            ("externalTriggers", given.external_triggers),
        ):
            for position, text in enumerate(refs):
                ref = _external(text, f"spec.input.{label}[{position}]")
                if ref.pipeline == name:
                    raise InvalidError(
                        f"reference {text!r}: a pipeline cannot chain from itself",
                        field=f"spec.input.{label}[{position}]",
                    )
        _join_type(given.join_type, "spec.input.joinType")
        _join_type(given.triggers_join_type, "spec.input.triggersJoinType")
        _not_negative(given.join_window_ms, "spec.input.joinWindowMs")
        for key, target in given.tensor_map.items():
            where = f"spec.input.tensorMap[{key}]"
            ref = _external(key, where)
            _names_tensor(ref, key, target, where, "")
    if spec.output is not None:
        out = spec.output
        for position, text in enumerate(out.steps):
            where = f"spec.output.steps[{position}]"
            _existing(name, steps, _reference(name, text, where, "output"), text, where, "output")
        _join_type(out.steps_join, "spec.output.stepsJoin")
        _not_negative(out.join_window_ms, "spec.output.joinWindowMs")
        _check_tensor_map(name, steps, out.tensor_map, "spec.output.tensorMap", "output")


def _step_names(pipeline: str, steps: Sequence[PipelineStep]) -> dict[str, int]:
    """Step name -> index; checks names are valid model names, unique, not the pipeline's."""
    seen: dict[str, int] = {}
    for index, step in enumerate(steps):
        where = f"spec.steps[{index}].name"
        if not step.name:
            raise InvalidError("is required (the name of the model the step calls)", field=where)
        if len(step.name) > NAME_MAX_LENGTH or not NAME_PATTERN.match(step.name):
            raise InvalidError(
                f"{step.name!r} is not a valid model name: use lower-case letters, digits and '-'",
                field=where,
            )
        if step.name == pipeline:
            raise InvalidError(
                f"step {step.name!r} has the pipeline's name; references to it would be ambiguous",
                field=where,
            )
        if step.name in seen:
            raise InvalidError(
                f"step {step.name!r} is repeated (also spec.steps[{seen[step.name]}])", field=where
            )
        seen[step.name] = index
    return seen


def _check_step(pipeline: str, steps: Mapping[str, int], step: PipelineStep, where: str) -> list[str]:
    """Check one step; returns the steps it depends on (through inputs and triggers)."""
    owner = f"step {step.name}"
    inputs = _step_refs(pipeline, steps, step.inputs, f"{where}.inputs", owner)
    triggers = _step_refs(pipeline, steps, step.triggers, f"{where}.triggers", owner)
    input_steps = {ref.step for ref in inputs if ref.step}
    for position, ref in enumerate(triggers):
        if ref.step and ref.step in input_steps:
            raise InvalidError(
                f"{owner}: step {ref.step!r} is both an input and a trigger of this step; "
                "use it as one or the other",
                field=f"{where}.triggers[{position}]",
            )
    _check_tensor_map(pipeline, steps, step.tensor_map, f"{where}.tensorMap", owner)
    _join_type(step.inputs_join_type, f"{where}.inputsJoinType")
    _join_type(step.triggers_join_type, f"{where}.triggersJoinType")
    _not_negative(step.join_window_ms, f"{where}.joinWindowMs")
    if step.batch is not None:
        _check_batch(step.batch, f"{where}.batch")
    return list(dict.fromkeys(ref.step for ref in (*inputs, *triggers) if ref.step))


def _step_refs(
    pipeline: str, steps: Mapping[str, int], texts: Iterable[str], where: str, owner: str
) -> list[TensorRef]:
    out: list[TensorRef] = []
    for position, text in enumerate(texts):
        at = f"{where}[{position}]"
        out.append(_existing(pipeline, steps, _reference(pipeline, text, at, owner), text, at, owner))
    return out


def _reference(pipeline: str, text: str, where: str, owner: str) -> TensorRef:
    try:
        return parse_reference(text, pipeline)
    except BadReference as exc:
        raise InvalidError(
            f"{owner}: bad reference {text.strip()!r}: {_reason(exc, text)}", field=where
        ) from None


def _external(text: str, where: str) -> TensorRef:
    try:
        return parse_external_reference(text)
    except BadReference as exc:
        raise InvalidError(
            f"input: bad reference {text.strip()!r}: {_reason(exc, text)}", field=where
        ) from None


def _reason(exc: BadReference, text: str) -> str:
    """The parser's reason without its leading quote of the reference (we quote it already)."""
    return str(exc).removeprefix(f"{text.strip()!r}: ")


def _existing(
    pipeline: str, steps: Mapping[str, int], ref: TensorRef, text: str, where: str, owner: str
) -> TensorRef:
    if ref.step and ref.step not in steps:
        raise InvalidError(
            f"{owner}: reference {text.strip()!r} names step {ref.step!r}, which is not a step of "
            f"pipeline {pipeline} (steps: {', '.join(steps)})",
            field=where,
        )
    return ref


def _check_tensor_map(
    pipeline: str, steps: Mapping[str, int], tensor_map: Mapping[str, str], where: str, owner: str
) -> None:
    for key, target in tensor_map.items():
        at = f"{where}[{key}]"
        ref = _existing(pipeline, steps, _reference(pipeline, key, at, owner), key, at, owner)
        _names_tensor(ref, key, target, at, f"{owner}: ")


def _names_tensor(ref: TensorRef, key: str, target: str, where: str, prefix: str) -> None:
    if not ref.tensor:
        raise InvalidError(
            f"{prefix}tensorMap key {key.strip()!r} must name one tensor "
            "(step.outputs.TENSOR or <pipeline>.inputs.TENSOR), not a whole port",
            field=where,
        )
    if not target.strip():
        raise InvalidError(f"{prefix}tensorMap {key.strip()!r} maps to an empty tensor name", field=where)


def _join_type(value: str, where: str) -> None:
    if value not in JOIN_TYPES:
        raise InvalidError(f"must be one of {', '.join(JOIN_TYPES)}, got {value!r}", field=where)


def _not_negative(value: int, where: str) -> None:
    if value < 0:
        raise InvalidError(f"must be >= 0, got {value}", field=where)


def _check_batch(batch: PipelineBatch, where: str) -> None:
    _not_negative(batch.size, f"{where}.size")
    _not_negative(batch.window_ms, f"{where}.windowMs")
