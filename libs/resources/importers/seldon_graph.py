"""A predictor's inference graph (Seldon v1 executor semantics) -> what the natives can run.

The executor runs a node in stages: (1) a MODEL predicts, a TRANSFORMER transforms the input,
others pass it through; (2) a ROUTER picks one child (RANDOM_ABTEST: child 0 with probability
``ratioA``, default 0.5, else child 1), other nodes send the stage-1 output to every child in
parallel; (3) a COMBINER aggregates the children's outputs, other nodes answer with children[0]'s
output only; (4) an OUTPUT_TRANSFORMER transforms the answer.

What maps to natives, and how:
- prepackaged MODEL nodes: a tree of them is a dataflow. A node with children feeds its output
  to each child (fan-out, as the executor does); the answer is the end of the children[0]
  branch. The other branches run, as in Seldon, and their answers are dropped;
- SIMPLE_ROUTER always routes to child 0: the node is replaced by its first child (the other
  children are never called, so they are not deployed);
- RANDOM_ABTEST at the graph's root with two children: a weighted split (an Experiment built by
  the caller) between the two subtrees, ``ratioA`` to the first; children beyond two are never
  called. Anywhere else it would need a router inside a dataflow: not supported locally;
- everything that needs code we do not run (a node without implementation = its own
  container: MODEL, TRANSFORMER, OUTPUT_TRANSFORMER, ROUTER, COMBINER; the executor's
  SIMPLE_MODEL and AVERAGE_COMBINER; TEMPO_SERVER; a prepackaged server known only to the
  operator's configmap): accepted and reported NotSupportedLocally naming the node. The
  predictor then produces nothing: the rest of its graph would answer something else than what
  the user deployed.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.importers.base import NOT_SUPPORTED_LOCALLY, Problem
from modelplane.libs.resources.importers.seldon_models import REQUIREMENTS, TEMPO_SERVER
from modelplane.libs.resources.importers.seldon_types import (
    AVERAGE_COMBINER,
    RANDOM_ABTEST,
    SIMPLE_MODEL,
    SIMPLE_ROUTER,
    UNKNOWN_IMPLEMENTATION,
    Unit,
)
from modelplane.libs.resources.types import PipelineOutput, PipelineSpec, PipelineStep

RATIO_PARAMETER = "ratioA"


@dataclass(frozen=True, slots=True)
class Branch:
    """A tree of prepackaged MODEL nodes taking ``share`` (0..1) of the predictor's traffic."""

    root: Unit
    share: float = 1.0

    @property
    def single(self) -> bool:
        return not self.root.children


@dataclass(frozen=True, slots=True)
class GraphShape:
    """What a predictor's graph becomes: one branch, two (a RANDOM_ABTEST split), or none when
    a node needs code that does not run here (``problems`` say which)."""

    branches: tuple[Branch, ...]
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()


def graph_shape(graph: Unit) -> GraphShape:
    problems: list[Problem] = []
    notes: list[str] = []
    if graph.implementation == RANDOM_ABTEST:
        ratio = _ratio(graph)
        if len(graph.children) < 2:
            problems.append(
                _unsupported(graph, f"RANDOM_ABTEST {graph.name} needs two children to split between")
            )
            return GraphShape((), tuple(problems), tuple(notes))
        if len(graph.children) > 2:
            notes.append(f"RANDOM_ABTEST {graph.name}: children beyond the second are never called")
        first = _resolve(graph.children[0], problems, notes)
        second = _resolve(graph.children[1], problems, notes)
        if first is None or second is None:
            return GraphShape((), tuple(problems), tuple(notes))
        notes.append(
            f"RANDOM_ABTEST {graph.name}: {ratio:g} of requests to {first.name}, {1 - ratio:g} to {second.name}"
        )
        return GraphShape((Branch(first, ratio), Branch(second, 1 - ratio)), tuple(problems), tuple(notes))
    root = _resolve(graph, problems, notes)
    if root is None:
        return GraphShape((), tuple(problems), tuple(notes))
    return GraphShape((Branch(root),), tuple(problems), tuple(notes))


def _resolve(unit: Unit, problems: list[Problem], notes: list[str]) -> Unit | None:
    """``unit`` with SIMPLE_ROUTERs replaced by their first child; None (and a problem per node)
    when some node of the subtree does not run here. Every node is visited, so every problem
    is reported at once."""
    implementation = unit.implementation
    if implementation == SIMPLE_ROUTER:
        if not unit.children:
            problems.append(_unsupported(unit, f"SIMPLE_ROUTER {unit.name} has no child to route to"))
            return None
        if len(unit.children) > 1:
            notes.append(
                f"SIMPLE_ROUTER {unit.name} always routes to {unit.children[0].name}; its other children are not deployed"
            )
        return _resolve(unit.children[0], problems, notes)
    children = [_resolve(child, problems, notes) for child in unit.children]
    reason = _unsupported_reason(unit)
    if reason:
        problems.append(_unsupported(unit, reason))
        return None
    if any(child is None for child in children):
        return None
    return Unit(
        path=unit.path,
        name=unit.name,
        type=unit.type,
        implementation=unit.implementation,
        methods=unit.methods,
        children=tuple(c for c in children if c is not None),
        parameters=unit.parameters,
        model_uri=unit.model_uri,
        secret_name=unit.secret_name,
        logger_mode=unit.logger_mode,
    )


def _unsupported_reason(unit: Unit) -> str:
    implementation = unit.implementation
    if implementation in REQUIREMENTS:
        return ""
    if implementation == UNKNOWN_IMPLEMENTATION:
        return (
            f"{unit.type or 'custom'} node {unit.name} runs its own container (componentSpecs), which "
            "does not run here; it needs a cluster"
        )
    if implementation == RANDOM_ABTEST:
        return f"RANDOM_ABTEST {unit.name} is supported at the root of a graph only"
    if implementation in (SIMPLE_MODEL, AVERAGE_COMBINER):
        return f"{implementation} {unit.name} is built into Seldon's executor, which does not run here"
    if implementation == TEMPO_SERVER:
        return f"TEMPO_SERVER {unit.name} runs a Tempo pipeline, which does not run here"
    return (
        f"{implementation} (node {unit.name}) is not a prepackaged server known here (a custom "
        "server from the operator's configmap?)"
    )


def _unsupported(unit: Unit, message: str) -> Problem:
    return Problem(field=f"{unit.path}.implementation", reason=NOT_SUPPORTED_LOCALLY, message=message)


def _ratio(unit: Unit) -> float:
    for index, parameter in enumerate(unit.parameters):
        if parameter.name != RATIO_PARAMETER:
            continue
        field = f"{unit.path}.parameters[{index}].value"
        try:
            ratio = float(parameter.value)
        except ValueError:
            raise InvalidError(
                f"{RATIO_PARAMETER} must be a FLOAT, got {parameter.value!r}", field=field
            ) from None
        if not 0.0 <= ratio <= 1.0:
            raise InvalidError(
                f"{RATIO_PARAMETER} is a probability, 0..1, got {parameter.value}", field=field
            )
        return ratio
    return 0.5


def pipeline_spec(root: Unit, model_names: dict[str, str]) -> PipelineSpec:
    """The dataflow of a tree of MODEL nodes. ``model_names``: node name -> its Model's name.

    Steps in depth-first order; a child's input is its parent's outputs (the root takes the
    pipeline's input); the answer is the end of the children[0] chain."""
    steps: list[PipelineStep] = []

    def add(unit: Unit, parent: str) -> None:
        name = model_names[unit.name]
        steps.append(PipelineStep(name=name, inputs=(parent,) if parent else ()))
        for child in unit.children:
            add(child, name)

    add(root, "")
    last = root
    while last.children:
        last = last.children[0]
    return PipelineSpec(steps=tuple(steps), output=PipelineOutput(steps=(model_names[last.name],)))
