"""A checked SeldonDeployment -> the native resources that serve it, with their names.

Naming (clients call the deployment's name ``N``: the gateway's ``/seldon/<ns>/N/...``,
``/api/v1.0/predictions`` with ``seldon-model: N``, ``/v2/models/N/infer``):
- a predictor's root is a Model (single-node graph) or a Pipeline (a graph of several nodes)
  whose step Models are ``<root>-<node>``;
- the first non-shadow predictor's root is ``N`` (with several, the first one that takes
  traffic: a 0-traffic root named N would leave N's callers on a predictor that should get
  none); every other predictor's root is ``N-<predictor>``;
- a RANDOM_ABTEST root splits between two subtrees: the first takes the predictor's root name,
  the second ``<root>-<child>``;
- a name longer than 63 characters, or already taken by another node (names are built from
  user strings and may meet), becomes ``<prefix>-<8 hex>``, the hash of where it comes from,
  so it is stable across re-translations.

Traffic: several roots taking traffic (non-shadow predictors, RANDOM_ABTEST halves) or a shadow
make an Experiment ``N`` whose default is ``N``: weights = traffic (x the split's ratio, in
hundredths of a percent, when a RANDOM_ABTEST takes part), the shadow is the mirror (its
traffic percent, 0 = 100). An Experiment routes among one kind, so when any root is a Pipeline
every root is one (a single node becomes a one-step Pipeline).

A predictor whose graph needs code that does not run here produces nothing; when that is a
non-shadow predictor the whole deployment produces nothing (a split without one of its
predictors would send its traffic elsewhere), when it is the shadow only the mirror is left out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from modelplane.libs.resources.importers.base import NOT_SUPPORTED_LOCALLY, Problem
from modelplane.libs.resources.importers.seldon_graph import Branch, GraphShape, graph_shape, pipeline_spec
from modelplane.libs.resources.importers.seldon_manifest import parse_deployment
from modelplane.libs.resources.importers.seldon_models import node_model
from modelplane.libs.resources.importers.seldon_types import Deployment, Predictor, Unit
from modelplane.libs.resources.types import (
    NAME_MAX_LENGTH,
    Experiment,
    ExperimentCandidate,
    ExperimentMirror,
    ExperimentSpec,
    Meta,
    Model,
    Pipeline,
    Resource,
)

_HASH_LENGTH: Final = 8


@dataclass(frozen=True, slots=True)
class Target:
    """One served root: a Model or a Pipeline named ``name``, and the Model of each node."""

    name: str
    kind: str
    branch: Branch
    # Node name -> native Model name.
    models: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PredictorPlan:
    predictor: Predictor
    root_name: str
    # Empty when the predictor's graph does not run here.
    targets: tuple[Target, ...]


@dataclass(frozen=True, slots=True)
class DeploymentPlan:
    deployment: Deployment
    predictors: tuple[PredictorPlan, ...]
    resources: tuple[Resource, ...]
    problems: tuple[Problem, ...]
    notes: tuple[str, ...]


class _Names:
    """Native Model and Pipeline names (one namespace: the gateway resolves a name to a model,
    else to a pipeline), unique and at most 63 characters."""

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}
        self.shortened: list[str] = []

    def claim(self, wanted: str, key: str) -> str:
        if len(wanted) <= NAME_MAX_LENGTH and self._owner.get(wanted, key) == key:
            self._owner[wanted] = key
            return wanted
        digest = hashlib.sha256(key.encode()).hexdigest()
        prefix = wanted[: NAME_MAX_LENGTH - _HASH_LENGTH - 1].rstrip("-")
        for start in range(0, len(digest) - _HASH_LENGTH):
            name = f"{prefix}-{digest[start : start + _HASH_LENGTH]}"
            if self._owner.get(name, key) == key:
                self._owner[name] = key
                self.shortened.append(f"{wanted} -> {name}")
                return name
        raise AssertionError("no free name")  # pragma: no cover - 56 hash windows all taken


def plan_deployment(manifest: Mapping[str, Any]) -> DeploymentPlan:
    """The plan of a manifest; ``InvalidError`` naming the field when it is not valid."""
    deployment = parse_deployment(manifest)
    problems: list[Problem] = []
    notes: list[str] = [_protocol_note(deployment)]
    shapes: dict[int, GraphShape] = {}
    for predictor in deployment.predictors:
        shape = graph_shape(predictor.graph)
        shapes[predictor.index] = shape
        problems.extend(shape.problems)
        notes.extend(f"predictor {predictor.name}: {note}" for note in shape.notes)
        problems.extend(_predictor_problems(predictor))
    if deployment.server_type == "kafka":
        problems.append(
            Problem(
                "spec.serverType",
                NOT_SUPPORTED_LOCALLY,
                "serverType kafka: requests are not read from Kafka topics here; the deployment is "
                "served over HTTP and gRPC by the gateway",
            )
        )
    mains = [p for p in deployment.predictors if not p.shadow]
    shadow = next((p for p in deployment.predictors if p.shadow), None)
    if any(not shapes[p.index].branches for p in mains):
        blocked = ", ".join(p.name for p in mains if not shapes[p.index].branches)
        notes.append(
            f"nothing is applied: predictor {blocked} cannot run here, and it serves {deployment.name}'s callers"
        )
        return DeploymentPlan(deployment, (), (), tuple(problems), tuple(notes))
    if shadow is not None and len(shapes[shadow.index].branches) != 1:
        if shapes[shadow.index].branches:
            problems.append(
                Problem(
                    f"{shadow.path}.graph.implementation",
                    NOT_SUPPORTED_LOCALLY,
                    f"shadow {shadow.name}: a RANDOM_ABTEST cannot be a mirror; the shadow is not applied",
                )
            )
        notes.append(f"shadow {shadow.name} is not applied: the main predictors are served without a mirror")
        shadow = None
    served = [*mains, *([shadow] if shadow is not None else [])]
    first = mains[0] if len(mains) == 1 else next(p for p in mains if p.traffic > 0)
    ordered = [first, *(p for p in served if p is not first)]
    branches = [b for p in served for b in shapes[p.index].branches]
    experiment_needed = len(branches) > 1
    all_pipelines = experiment_needed and any(not b.single for b in branches)
    names = _Names()
    plans: dict[int, PredictorPlan] = {}
    resources: list[Resource] = []
    pipelines: list[Resource] = []
    for predictor in ordered:
        root = deployment.name if predictor is first else f"{deployment.name}-{predictor.name}"
        root = names.claim(root, f"{predictor.name}/")
        targets: list[Target] = []
        for position, branch in enumerate(shapes[predictor.index].branches):
            name = (
                root
                if position == 0
                else names.claim(f"{root}-{branch.root.name}", f"{predictor.name}/{branch.root.path}")
            )
            target = _target(name, branch, all_pipelines or not branch.single, predictor, names)
            targets.append(target)
            for unit in branch.root.walk():
                built = node_model(unit, predictor, deployment)
                problems.extend(built.problems)
                notes.extend(f"predictor {predictor.name}: {note}" for note in built.notes)
                resources.append(Model(meta=Meta(name=target.models[unit.name]), spec=built.spec))
            if target.kind == "Pipeline":
                spec = pipeline_spec(branch.root, dict(target.models))
                pipelines.append(Pipeline(meta=Meta(name=name), spec=spec))
        plans[predictor.index] = PredictorPlan(predictor, root, tuple(targets))
    resources.extend(pipelines)
    ordered_plans = tuple(plans[p.index] for p in deployment.predictors if p.index in plans)
    if experiment_needed:
        experiment = _experiment(deployment, ordered_plans, all_pipelines, notes)
        resources.append(experiment)
    if names.shortened:
        notes.append("names shortened to 63 characters or made unique: " + ", ".join(names.shortened))
    return DeploymentPlan(deployment, ordered_plans, tuple(resources), tuple(problems), tuple(notes))


def _target(name: str, branch: Branch, pipeline: bool, predictor: Predictor, names: _Names) -> Target:
    if not pipeline:
        return Target(name, "Model", branch, {branch.root.name: name})
    models = {
        unit.name: names.claim(f"{name}-{unit.name}", f"{predictor.name}/{unit.path}")
        for unit in branch.root.walk()
    }
    return Target(name, "Pipeline", branch, models)


def _experiment(
    deployment: Deployment, plans: tuple[PredictorPlan, ...], pipelines: bool, notes: list[str]
) -> Experiment:
    mains = [plan for plan in plans if not plan.predictor.shadow]
    split = any(len(plan.targets) > 1 for plan in mains)
    candidates: list[ExperimentCandidate] = []
    for plan in mains:
        traffic = plan.predictor.traffic if len(mains) > 1 else 100
        for target in plan.targets:
            weight = round(traffic * target.branch.share * 100) if split else traffic
            if weight <= 0:
                notes.append(f"{target.name} takes no traffic (weight 0) and is left out of the experiment")
                continue
            candidates.append(ExperimentCandidate(name=target.name, weight=weight))
    mirror: ExperimentMirror | None = None
    for plan in plans:
        if plan.predictor.shadow:
            mirror = ExperimentMirror(name=plan.targets[0].name, percent=plan.predictor.traffic or 100)
    default = deployment.name if any(c.name == deployment.name for c in candidates) else ""
    resource_type = "pipeline" if pipelines else "model"
    shares = ", ".join(f"{c.name}={c.weight}" for c in candidates)
    mirrored = f", mirror {mirror.name} {mirror.percent}%" if mirror is not None else ""
    notes.append(f"experiment {deployment.name} over {resource_type}s: {shares}{mirrored}")
    spec = ExperimentSpec(
        candidates=tuple(candidates), default=default, mirror=mirror, resource_type=resource_type
    )
    return Experiment(meta=Meta(name=deployment.name), spec=spec)


def _predictor_problems(predictor: Predictor) -> list[Problem]:
    problems: list[Problem] = []
    if predictor.has_explainer:
        problems.append(
            Problem(
                f"{predictor.path}.explainer",
                NOT_SUPPORTED_LOCALLY,
                f"predictor {predictor.name}: the alibi explainer runs in its own container, which "
                "does not run here; the predictor is served without it",
            )
        )
    for unit in predictor.graph.walk():
        if unit.logger_mode:
            problems.append(
                Problem(
                    f"{unit.path}.logger",
                    NOT_SUPPORTED_LOCALLY,
                    f"node {unit.name}: request logging to an external URL is not done here",
                )
            )
    return problems


def _protocol_note(deployment: Deployment) -> str:
    return (
        f"protocol {deployment.protocol}: the gateway serves every model over the Seldon protocol "
        "(/api/v1.0/predictions), V2 (/v2/models/<name>/infer) and KServe V1 "
        f"(/v1/models/<name>:predict), REST and gRPC, whatever transport ({deployment.transport}) says"
    )


def root_units(plan: PredictorPlan) -> tuple[Unit, ...]:
    """The nodes of a predictor that have a native Model, in graph order."""
    return tuple(u for target in plan.targets for u in target.branch.root.walk())
