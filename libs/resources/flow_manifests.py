"""Pipeline and InferenceGraph manifests (split from ``manifests``): their pydantic models, native
and imported (Seldon ``Pipeline``, KServe ``InferenceGraph``), and their native rendering.

A Pipeline keeps its references as written and is checked by ``pipeline_validation``; an
InferenceGraph (whose KServe scaling and pod fields are ignored) by ``graph_validation``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from modelplane.libs.resources.bounds import Int32, Int64
from modelplane.libs.resources.graph_validation import validate_graph
from modelplane.libs.resources.manifest_base import Lenient, Strict, compact, validate_model
from modelplane.libs.resources.pipeline_validation import validate_pipeline
from modelplane.libs.resources.types import (
    GRAPH_DEPENDENCIES,
    JOIN_TYPES,
    GraphNode,
    GraphStep,
    InferenceGraphSpec,
    PipelineBatch,
    PipelineInput,
    PipelineOutput,
    PipelineSpec,
    PipelineStep,
)


def _strip_all(values: list[str]) -> tuple[str, ...]:
    return tuple(v.strip() for v in values if v.strip())


def _strip_map(values: dict[str, str]) -> dict[str, str]:
    return {k.strip(): v.strip() for k, v in values.items()}


class _PipelineBatchBase(BaseModel):
    size: Int32 | None = None
    windowMs: Int64 | None = None

    def to_domain(self) -> PipelineBatch:
        return PipelineBatch(size=self.size or 0, window_ms=self.windowMs or 0)


class _PipelineStepBase(BaseModel):
    name: str
    inputs: list[str] = Field(default_factory=list)
    triggers: list[str] = Field(default_factory=list)
    tensorMap: dict[str, str] = Field(default_factory=dict)
    inputsJoinType: str | None = None
    triggersJoinType: str | None = None
    joinWindowMs: Int64 | None = None
    batch: Any = None


class _PipelineInputBase(BaseModel):
    externalInputs: list[str] = Field(default_factory=list)
    externalTriggers: list[str] = Field(default_factory=list)
    joinType: str | None = None
    triggersJoinType: str | None = None
    joinWindowMs: Int64 | None = None
    tensorMap: dict[str, str] = Field(default_factory=dict)

    def to_domain(self) -> PipelineInput:
        return PipelineInput(
            external_inputs=_strip_all(self.externalInputs),
            external_triggers=_strip_all(self.externalTriggers),
            join_type=(self.joinType or JOIN_TYPES[0]).strip(),
            triggers_join_type=(self.triggersJoinType or JOIN_TYPES[0]).strip(),
            join_window_ms=self.joinWindowMs or 0,
            tensor_map=_strip_map(self.tensorMap),
        )


class _PipelineOutputBase(BaseModel):
    steps: list[str] = Field(default_factory=list)
    stepsJoin: str | None = None
    joinWindowMs: Int64 | None = None
    tensorMap: dict[str, str] = Field(default_factory=dict)

    def to_domain(self) -> PipelineOutput:
        return PipelineOutput(
            steps=_strip_all(self.steps),
            steps_join=(self.stepsJoin or JOIN_TYPES[0]).strip(),
            join_window_ms=self.joinWindowMs or 0,
            tensor_map=_strip_map(self.tensorMap),
        )


class _NativePipelineBatch(_PipelineBatchBase, Strict):
    pass


class _SeldonPipelineBatch(_PipelineBatchBase, Lenient):
    pass


class _NativePipelineStep(_PipelineStepBase, Strict):
    pass


class _SeldonPipelineStep(_PipelineStepBase, Lenient):
    pass


class _NativePipelineInput(_PipelineInputBase, Strict):
    pass


class _SeldonPipelineInput(_PipelineInputBase, Lenient):
    pass


class _NativePipelineOutput(_PipelineOutputBase, Strict):
    pass


class _SeldonPipelineOutput(_PipelineOutputBase, Lenient):
    pass


class _PipelineSpecBase(BaseModel):
    # Sections are validated one by one (strict or lenient like the spec) so an error names its
    # index (spec.steps[1].inputs).
    steps: list[Any] = Field(default_factory=list)
    input: Any = None
    output: Any = None
    allowCycles: bool = False
    maxStepRevisits: Int32 | None = None

    def to_domain(self, name: str, native: bool) -> PipelineSpec:
        step_model = _NativePipelineStep if native else _SeldonPipelineStep
        batch_model = _NativePipelineBatch if native else _SeldonPipelineBatch
        steps: list[PipelineStep] = []
        for index, item in enumerate(self.steps):
            where = f"spec.steps[{index}]"
            given: _PipelineStepBase = validate_model(step_model, item, where)
            batch: PipelineBatch | None = None
            if given.batch is not None:
                batch = validate_model(batch_model, given.batch, f"{where}.batch").to_domain()
            steps.append(
                PipelineStep(
                    name=given.name.strip(),
                    inputs=_strip_all(given.inputs),
                    triggers=_strip_all(given.triggers),
                    tensor_map=_strip_map(given.tensorMap),
                    inputs_join_type=(given.inputsJoinType or JOIN_TYPES[0]).strip(),
                    triggers_join_type=(given.triggersJoinType or JOIN_TYPES[0]).strip(),
                    join_window_ms=given.joinWindowMs or 0,
                    batch=batch,
                )
            )
        given_input: PipelineInput | None = None
        if self.input is not None:
            input_model = _NativePipelineInput if native else _SeldonPipelineInput
            given_input = validate_model(input_model, self.input, "spec.input").to_domain()
        output: PipelineOutput | None = None
        if self.output is not None:
            output_model = _NativePipelineOutput if native else _SeldonPipelineOutput
            output = validate_model(output_model, self.output, "spec.output").to_domain()
        spec = PipelineSpec(
            steps=tuple(steps),
            input=given_input,
            output=output,
            allow_cycles=self.allowCycles,
            max_step_revisits=self.maxStepRevisits or 0,
        )
        validate_pipeline(name, spec)
        return spec


class NativePipelineSpec(_PipelineSpecBase, Strict):
    pass


class SeldonPipelineSpec(_PipelineSpecBase, Lenient):
    pass


class _GraphStepBase(BaseModel):
    name: str | None = None
    serviceName: str | None = None
    serviceUrl: str | None = None
    nodeName: str | None = None
    data: str | None = None
    condition: str | None = None
    weight: Int32 | None = None
    dependency: str | None = None

    def to_domain(self) -> GraphStep:
        return GraphStep(
            name=(self.name or "").strip(),
            service_name=(self.serviceName or "").strip(),
            service_url=(self.serviceUrl or "").strip(),
            node_name=(self.nodeName or "").strip(),
            data=(self.data or "").strip(),
            condition=(self.condition or "").strip(),
            weight=self.weight or 0,
            dependency=(self.dependency or GRAPH_DEPENDENCIES[0]).strip(),
        )


class _NativeGraphStep(_GraphStepBase, Strict):
    pass


class _KServeGraphStep(_GraphStepBase, Lenient):
    pass


class _GraphNodeBase(BaseModel):
    routerType: str
    steps: list[Any] = Field(default_factory=list)


class _NativeGraphNode(_GraphNodeBase, Strict):
    pass


class _KServeGraphNode(_GraphNodeBase, Lenient):
    pass


class _GraphSpecBase(BaseModel):
    nodes: dict[str, Any] = Field(default_factory=dict)
    # Seconds (KServe: an integer).
    timeout: float | None = None

    def to_domain(self, name: str, native: bool) -> InferenceGraphSpec:
        node_model = _NativeGraphNode if native else _KServeGraphNode
        step_model = _NativeGraphStep if native else _KServeGraphStep
        nodes: dict[str, GraphNode] = {}
        for node_name, item in self.nodes.items():
            where = f"spec.nodes.{node_name}"
            node: _GraphNodeBase = validate_model(node_model, item, where)
            steps = tuple(
                validate_model(step_model, step, f"{where}.steps[{index}]").to_domain()
                for index, step in enumerate(node.steps)
            )
            nodes[node_name] = GraphNode(router_type=node.routerType.strip(), steps=steps)
        spec = InferenceGraphSpec(nodes=nodes, timeout_seconds=float(self.timeout or 0))
        validate_graph(name, spec)
        return spec


class NativeInferenceGraphSpec(_GraphSpecBase, Strict):
    pass


class KServeInferenceGraphSpec(_GraphSpecBase, Lenient):
    """KServe's fields we do not act on (resources, affinity, min/maxReplicas, scaleTarget,
    scaleMetric) are ignored: the dataflow workers run every graph."""


def pipeline_manifest(p: PipelineSpec) -> dict[str, Any]:
    """Seldon's field names. Join types are always written in the input/output/batch sections so a
    section the user wrote stays present (and a reader sees the join that applies)."""
    steps = []
    for step in p.steps:
        out = compact(
            {
                "name": step.name,
                "inputs": list(step.inputs),
                "triggers": list(step.triggers),
                "tensorMap": dict(step.tensor_map),
                "inputsJoinType": step.inputs_join_type if step.inputs_join_type != JOIN_TYPES[0] else None,
                "triggersJoinType": (
                    step.triggers_join_type if step.triggers_join_type != JOIN_TYPES[0] else None
                ),
                "joinWindowMs": step.join_window_ms,
            }
        )
        if step.batch is not None:
            out["batch"] = {"size": step.batch.size, **compact({"windowMs": step.batch.window_ms})}
        steps.append(out)
    spec: dict[str, Any] = {
        "steps": steps,
        "allowCycles": p.allow_cycles or None,
        "maxStepRevisits": p.max_step_revisits,
    }
    if p.input is not None:
        given = p.input
        spec["input"] = {
            "joinType": given.join_type,
            **compact(
                {
                    "externalInputs": list(given.external_inputs),
                    "externalTriggers": list(given.external_triggers),
                    "triggersJoinType": (
                        given.triggers_join_type if given.triggers_join_type != JOIN_TYPES[0] else None
                    ),
                    "joinWindowMs": given.join_window_ms,
                    "tensorMap": dict(given.tensor_map),
                }
            ),
        }
    if p.output is not None:
        out_spec = p.output
        spec["output"] = {
            "stepsJoin": out_spec.steps_join,
            **compact(
                {
                    "steps": list(out_spec.steps),
                    "joinWindowMs": out_spec.join_window_ms,
                    "tensorMap": dict(out_spec.tensor_map),
                }
            ),
        }
    return spec


def graph_step_manifest(step: GraphStep) -> dict[str, Any]:
    return compact(
        {
            "name": step.name,
            "serviceName": step.service_name,
            "serviceUrl": step.service_url,
            "nodeName": step.node_name,
            "data": step.data,
            "condition": step.condition,
            "weight": step.weight,
            "dependency": step.dependency if step.dependency != GRAPH_DEPENDENCIES[0] else None,
        }
    )
