"""Native statuses -> a SeldonDeployment's status in Seldon Core v1's shape.

Seldon's controller writes ``state`` (Available when every Deployment and Service is ready,
Failed when a Deployment stopped progressing, else Creating), ``description``,
``deploymentStatus`` per Kubernetes Deployment (``<sdep>-<predictor>-<component index>-<its
container names joined by '-'>``, or ``seldon-<md5>`` beyond 63 characters), ``serviceStatus``
per Service, ``replicas`` (of the first predictor's first Deployment), ``address.url`` and
knative-style conditions. Here:

- a Deployment is the set of native Models of the nodes whose containers share one
  componentSpec (a prepackaged node without a container of its own joins componentSpecs[0], as
  Seldon's defaulting puts it there): replicas and availableReplicas are the smallest of its
  Models';
- DeploymentsReady: every Model is ModelAvailable (or ModelScaledDown: the gateway scales it up
  when called); ServicesReady: every Pipeline is PipelineReady and the Experiment
  ExperimentReady (what routes the deployment's name); Ready: both;
- Failed when a Model is ModelFailed or ScheduleFailed, a Pipeline PipelineFailed, or nothing
  could be applied (the description gives the problems); Available when Ready; else Creating;
- ``serviceStatus`` has one entry per predictor, named as Seldon names its predictor Service,
  with the gateway's endpoints; ``address.url`` is the gateway's URL for the deployment's name
  under Seldon's ingress prefix and its protocol: ``/seldon/<namespace>/<name>/`` +
  ``api/v1.0/predictions`` (seldon), ``v2/models/<root>/infer`` (v2, kfserving),
  ``v1/models/<root>:predict`` (tensorflow); the prefix reaches a model or a pipeline alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from modelplane.libs.resources.importers.base import (
    DEFAULT_NAMESPACE,
    ForeignDocument,
    NativeStatus,
    NativeStatuses,
    Problem,
    StatusContext,
    Translation,
)
from modelplane.libs.resources.importers.namespaces import SEPARATOR
from modelplane.libs.resources.importers.seldon_models import REQUIREMENTS
from modelplane.libs.resources.importers.seldon_plan import DeploymentPlan, PredictorPlan
from modelplane.libs.resources.importers.seldon_types import Predictor
from modelplane.libs.resources.types import NAME_MAX_LENGTH

AVAILABLE: Final = "Available"
CREATING: Final = "Creating"
FAILED: Final = "Failed"

_MODEL_OK: Final = frozenset({"ModelAvailable", "ModelScaledDown"})
_FAILED: Final = frozenset({"ModelFailed", "ScheduleFailed", "PipelineFailed"})
_READY: Final = {
    "Model": _MODEL_OK,
    "Pipeline": frozenset({"PipelineReady"}),
    "Experiment": frozenset({"ExperimentReady"}),
}


@dataclass(frozen=True, slots=True)
class _Group:
    """One Seldon Deployment: its name and the native Models of its nodes."""

    name: str
    models: tuple[str, ...]


def deployment_status(
    document: ForeignDocument,
    translation: Translation,
    plan: DeploymentPlan,
    natives: NativeStatuses,
    context: StatusContext,
) -> dict[str, Any]:
    observed = [natives(r.kind, r.meta.name) for r in translation.resources]
    by_name = {(s.kind, s.name): s for s in observed}
    failed = [s for s in observed if s.state in _FAILED]
    models = [s for s in observed if s.kind == "Model"]
    routing = [s for s in observed if s.kind != "Model"]
    deployments_ready = bool(models) and all(_ready(s) for s in models)
    services_ready = bool(models) and all(_ready(s) for s in routing)
    name = plan.deployment.name
    status: dict[str, Any] = {}
    if not translation.resources:
        status["state"] = FAILED
        status["description"] = _problems_text(translation.problems) or "nothing to serve"
    elif failed:
        status["state"] = FAILED
        status["description"] = "; ".join(_failure(s) for s in failed)
    elif deployments_ready and services_ready:
        status["state"] = AVAILABLE
        status["description"] = ""
    else:
        status["state"] = CREATING
        status["description"] = _problems_text(translation.problems)
    groups = [g for p in plan.predictors for g in _groups(name, p)]
    deployment_statuses: dict[str, dict[str, int]] = {}
    for group in groups:
        members = [by_name.get(("Model", m)) for m in group.models]
        known = [m for m in members if m is not None and m.found]
        if not known:
            continue
        deployment_statuses[group.name] = {
            "replicas": min(m.total_replicas for m in known),
            "availableReplicas": min(m.available_replicas for m in known),
        }
    if deployment_statuses:
        status["deploymentStatus"] = deployment_statuses
    first = next((g for g in groups if g.name in deployment_statuses), None)
    status["replicas"] = deployment_statuses[first.name]["replicas"] if first is not None else 0
    if translation.resources:
        status["serviceStatus"] = {
            key: {
                "svcName": key,
                "httpEndpoint": urlsplit(context.gateway_url).netloc or context.gateway_url,
                **({"grpcEndpoint": context.gateway_grpc} if context.gateway_grpc else {}),
            }
            for key in (_seldon_name(f"{name}-{p.predictor.name}") for p in plan.predictors)
        }
        status["address"] = {"url": context.gateway_url.rstrip("/") + _path(plan, document.ref.namespace)}
    status["conditions"] = [
        _condition(
            "DeploymentsReady", deployments_ready, "All Deployments ready", "Deployments not ready", models
        ),
        _condition(
            "ServicesReady", services_ready, "All services created", "Not all services created", routing
        ),
        _condition("Ready", deployments_ready and services_ready, "Ready", status["state"], observed),
    ]
    return status


def _ready(status: NativeStatus) -> bool:
    return status.found and status.state in _READY.get(status.kind, frozenset())


def _failure(status: NativeStatus) -> str:
    reason = f": {status.reason}" if status.reason else ""
    return f"{status.kind} {status.name} is {status.state}{reason}"


def _problems_text(problems: Sequence[Problem]) -> str:
    return "; ".join(f"{p.field}: {p.message}" for p in problems)


def _condition(kind: str, ok: bool, yes: str, no: str, sources: Sequence[NativeStatus]) -> dict[str, str]:
    condition = {"type": kind, "status": "True" if ok else "False", "reason": yes if ok else no}
    changed = max((s.last_change for s in sources if s.last_change), default="")
    if changed:
        condition["lastTransitionTime"] = changed
    return condition


def _path(plan: DeploymentPlan, namespace: str) -> str:
    """The deployment's path on the gateway, under Seldon's ingress prefix (it reaches a model
    or a pipeline alike); the inner model name is the graph root's, as Seldon's own address
    says. Outside ``default`` the plan's name carries the namespace (importers.namespaces): the
    path shows the name the user wrote."""
    name = plan.deployment.name.removeprefix(f"{namespace}{SEPARATOR}") if namespace else plan.deployment.name
    prefix = f"/seldon/{namespace or DEFAULT_NAMESPACE}/{name}"
    root = plan.deployment.predictors[0].graph.name if plan.deployment.predictors else name
    protocol = plan.deployment.protocol
    if protocol == "tensorflow":
        return f"{prefix}/v1/models/{root}:predict"
    if protocol in ("v2", "kfserving"):
        return f"{prefix}/v2/models/{root}/infer"
    return f"{prefix}/api/v1.0/predictions"


def _groups(name: str, plan: PredictorPlan) -> list[_Group]:
    """Seldon's Deployments of one predictor, with the native Models of their nodes."""
    predictor = plan.predictor
    models = {node: model for target in plan.targets for node, model in target.models.items()}
    out: list[_Group] = []
    for index, containers in _pods(predictor):
        component = predictor.components[index] if index < len(predictor.components) else None
        label = component.pod_name if component is not None and component.pod_name else "-".join(containers)
        members = tuple(models[c] for c in containers if c in models)
        out.append(_Group(_seldon_name(f"{name}-{predictor.name}-{index}-{label}"), members))
    return out


def _pods(predictor: Predictor) -> list[tuple[int, tuple[str, ...]]]:
    """(componentSpec index, container names) as Seldon's defaulting leaves them: prepackaged
    nodes without a container of their own are appended to the first componentSpec."""
    listed = {c for component in predictor.components for c in component.containers}
    added = tuple(
        u.name for u in predictor.graph.walk() if u.implementation in REQUIREMENTS and u.name not in listed
    )
    if not predictor.components:
        return [(0, added)] if added else []
    pods = [(component.index, component.containers) for component in predictor.components]
    pods[0] = (0, (*pods[0][1], *added))
    return pods


def _seldon_name(name: str) -> str:
    """Seldon's rule for generated names: beyond 63 characters, ``seldon-<md5 of the name>``."""
    if len(name) <= NAME_MAX_LENGTH:
        return name
    return "seldon-" + hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()
