"""KServe-shaped status of an InferenceService and a TrainedModel, from the translation (its
problems, resources and memo) and the observed state of the native resources.

InferenceService: ``url`` and ``address.url`` are the gateway's base URL (every model is
served there under /v1/models/N and /v2/models/N; there is no per-service host), conditions
PredictorReady, IngressReady (the gateway routes a model as soon as it is available, so it
follows PredictorReady), TransformerReady/ExplainerReady when those parts exist (never ready
here), and Ready (all of them, as KServe's living condition set); ``modelStatus`` from the
native Model (the canary when there is one; the Server for a multi-model predictor):
ModelAvailable -> Loaded/UpToDate, ModelProgressing -> Loading/InProgress, not observed yet ->
Pending/InProgress, ModelFailed -> FailedToLoad/BlockedByFailedLoad (ModelLoadFailed),
ScheduleFailed -> Pending/InProgress with the scheduler's reason, scaled to zero -> Standby.
A problem of the predictor wins: runtime selection failures are InvalidSpec, others
BlockedByFailedLoad; its reason and message are the lastFailureInfo.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from modelplane.libs.resources.importers.base import (
    ForeignDocument,
    NativeStatus,
    NativeStatuses,
    Problem,
    StatusContext,
    Translation,
)
from modelplane.libs.resources.importers.kserve_runtimes import CLUSTER_SERVING_RUNTIME, SELECTION_REASONS
from modelplane.libs.resources.types import Experiment, Model, Server

MEMO_PROTOCOL: Final = "protocol"
MEMO_ROLLED_OUT: Final = "rolledOut"
MEMO_RUNTIME: Final = "runtime"
MEMO_RUNTIME_KIND: Final = "runtimeKind"

MODEL_AVAILABLE: Final = "ModelAvailable"
SERVER_READY: Final = "ServerReady"

# TrainedModel reasons (KServe's, plus ours for a parent that is not applied).
INFERENCE_SERVICE_NOT_FOUND: Final = "InferenceServiceNotFound"
INFERENCE_SERVICE_NOT_READY: Final = "InferenceServiceNotReady"
IS_NOT_MMS_PREDICTOR: Final = "IsNotMMSPredictor"
MEMORY_RESOURCE_NOT_AVAILABLE: Final = "MemoryResourceNotAvailable"

_MODEL_STATES: Final = {
    # native state -> (targetModelState, transitionStatus, failure reason or "")
    MODEL_AVAILABLE: ("Loaded", "UpToDate", ""),
    "ModelProgressing": ("Loading", "InProgress", ""),
    "ModelFailed": ("FailedToLoad", "BlockedByFailedLoad", "ModelLoadFailed"),
    "ModelTerminateFailed": ("FailedToLoad", "BlockedByFailedLoad", "ModelLoadFailed"),
    "ScheduleFailed": ("Pending", "InProgress", "ScheduleFailed"),
    "ModelScaledDown": ("Standby", "UpToDate", ""),
    "ModelTerminating": ("Standby", "InProgress", ""),
    "ModelTerminated": ("Standby", "InProgress", ""),
}
_PENDING: Final = ("Pending", "InProgress", "")


def condition(kind: str, ok: bool, reason: str = "", message: str = "", when: str = "") -> dict[str, str]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": "" if ok else reason,
        "message": "" if ok else message,
        "lastTransitionTime": when,
    }


def _ready(parts: list[dict[str, str]], when: str) -> dict[str, str]:
    failing = next((c for c in parts if c["status"] != "True"), None)
    if failing is None:
        return condition("Ready", True, when=when)
    return condition(
        "Ready", False, failing["reason"], failing["message"], failing["lastTransitionTime"] or when
    )


def _caught_up(status: NativeStatus) -> bool:
    return status.found and status.generation > 0 and status.observed_generation >= status.generation


def _model_state(status: NativeStatus) -> tuple[str, str, str]:
    if not status.found:
        return _PENDING
    return _MODEL_STATES.get(status.state, _PENDING)


def _failure(reason: str, message: str) -> dict[str, str]:
    return {"reason": reason, "message": message}


def _predictor_from_problem(problem: Problem, active: str) -> tuple[dict[str, str], dict[str, Any]]:
    transition = "InvalidSpec" if problem.reason in SELECTION_REASONS else "BlockedByFailedLoad"
    model_status = {
        "transitionStatus": transition,
        "states": {"activeModelState": active, "targetModelState": "FailedToLoad"},
        "lastFailureInfo": _failure(problem.reason, problem.message),
    }
    return condition("PredictorReady", False, problem.reason, problem.message), model_status


def _predictor_from_model(
    target: NativeStatus, stable: NativeStatus
) -> tuple[dict[str, str], dict[str, Any]]:
    state, transition, failure = _model_state(target)
    ok = target.found and target.state == MODEL_AVAILABLE and stable.found and stable.state == MODEL_AVAILABLE
    active = "Loaded" if stable.found and stable.available_replicas > 0 else ""
    model_status: dict[str, Any] = {
        "transitionStatus": transition,
        "states": {"activeModelState": active, "targetModelState": state},
        "copies": {
            "totalCopies": target.available_replicas,
            "failedCopies": max(0, target.total_replicas - target.available_replicas)
            if failure == "ModelLoadFailed"
            else 0,
        },
    }
    if failure:
        model_status["lastFailureInfo"] = _failure(failure, target.reason)
    reason = target.state or "ModelNotObserved"
    message = target.reason or f"model {target.name} is {state.lower()}"
    return condition("PredictorReady", ok, reason, message, target.last_change), model_status


def _predictor_from_server(server: NativeStatus) -> tuple[dict[str, str], dict[str, Any]]:
    ok = server.found and server.state == SERVER_READY
    model_status: dict[str, Any] = {
        "transitionStatus": "UpToDate" if ok else "InProgress",
        "states": {
            "activeModelState": "Loaded" if ok else "",
            "targetModelState": "Loaded" if ok else "Pending",
        },
        "copies": {"totalCopies": server.available_replicas, "failedCopies": 0},
    }
    reason = server.state or "ServerNotObserved"
    message = server.reason or f"server {server.name} is not ready"
    return condition("PredictorReady", ok, reason, message, server.last_change), model_status


def inference_service_status(
    document: ForeignDocument, translation: Translation, natives: NativeStatuses, context: StatusContext
) -> dict[str, Any]:
    name = document.ref.name
    memo = translation.memo
    models = [r for r in translation.resources if isinstance(r, Model)]
    servers = [r for r in translation.resources if isinstance(r, Server)]
    experiments = [r for r in translation.resources if isinstance(r, Experiment)]
    predictor_problems = [p for p in translation.problems if p.field.startswith("spec.predictor")]
    caught_up = True
    if models:
        stable = natives("Model", name)
        target = natives("Model", models[-1].meta.name)
        caught_up = all(_caught_up(natives("Model", m.meta.name)) for m in models)
    if predictor_problems:
        active = "Loaded" if models and stable.found and stable.available_replicas > 0 else ""
        predictor, model_status = _predictor_from_problem(predictor_problems[0], active)
    elif models:
        predictor, model_status = _predictor_from_model(target, stable)
    elif servers:
        server = natives("Server", servers[-1].meta.name)
        caught_up = _caught_up(server)
        predictor, model_status = _predictor_from_server(server)
    else:
        message = "nothing to serve"
        predictor = condition("PredictorReady", False, "NoPredictor", message)
        model_status = {
            "transitionStatus": "InvalidSpec",
            "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
        }
    when = predictor["lastTransitionTime"]
    ingress = condition(
        "IngressReady",
        predictor["status"] == "True",
        "PredictorNotReady",
        "the gateway routes the model once it is available",
        when,
    )
    parts = [predictor, ingress]
    for part, kind in (("transformer", "TransformerReady"), ("explainer", "ExplainerReady")):
        problem = next((p for p in translation.problems if p.field == f"spec.{part}"), None)
        if problem is not None:
            parts.append(condition(kind, False, problem.reason, problem.message))
    gateway = context.gateway_url
    component: dict[str, Any] = {"url": gateway, "restUrl": gateway}
    if context.gateway_grpc:
        component["grpcUrl"] = context.gateway_grpc
    if experiments:
        component["traffic"] = [
            {"revisionName": c.name, "percent": c.weight, "latestRevision": c.name != name}
            for c in experiments[0].spec.candidates
        ]
    status: dict[str, Any] = {
        "url": gateway,
        "address": {"url": gateway},
        "conditions": [*parts, _ready(parts, when)],
        "components": {"predictor": component},
        "modelStatus": model_status,
    }
    runtime = str(memo.get(MEMO_RUNTIME) or "")
    if runtime:
        key = (
            "clusterServingRuntimeName"
            if memo.get(MEMO_RUNTIME_KIND) == CLUSTER_SERVING_RUNTIME
            else "servingRuntimeName"
        )
        status[key] = runtime
    if caught_up:
        status["observedGeneration"] = document.generation
    return status


def predict_path(model: str, protocol: str) -> str:
    """KServe's PredictPath: v1 and v2 REST paths; "" for gRPC."""
    if protocol == "v1":
        return f"/v1/models/{model}:predict"
    if protocol == "v2":
        return f"/v2/models/{model}/infer"
    return ""


def trained_model_status(
    document: ForeignDocument, translation: Translation, natives: NativeStatuses, context: StatusContext
) -> dict[str, Any]:
    name = document.ref.name
    spec = document.manifest.get("spec")
    parent = str(spec.get("inferenceService") or "") if isinstance(spec, Mapping) else ""
    by_reason = {p.reason: p for p in translation.problems}
    missing = by_reason.get(INFERENCE_SERVICE_NOT_FOUND) or by_reason.get(INFERENCE_SERVICE_NOT_READY)
    if missing is not None:
        parts = [
            condition(kind, False, missing.reason, missing.message)
            for kind in ("InferenceServiceReady", "IsMMSPredictor", "MemoryResourceAvailable")
        ]
    else:
        server = natives("Server", parent)
        isvc_ready = server.found and server.state == SERVER_READY
        parts = [
            condition(
                "InferenceServiceReady",
                isvc_ready,
                INFERENCE_SERVICE_NOT_READY,
                "Inference Service needs to be ready before Trained Model can be ready",
                server.last_change,
            )
        ]
        for kind, reason in (
            ("IsMMSPredictor", IS_NOT_MMS_PREDICTOR),
            ("MemoryResourceAvailable", MEMORY_RESOURCE_NOT_AVAILABLE),
        ):
            problem = by_reason.get(reason)
            parts.append(condition(kind, problem is None, reason, problem.message if problem else ""))
    models = [r for r in translation.resources if isinstance(r, Model)]
    when = ""
    if models:
        # Beyond KServe's three conditions: Ready also waits for the model to be loaded here.
        model = natives("Model", models[0].meta.name)
        when = model.last_change
        loaded = model.found and model.state == MODEL_AVAILABLE
        parts.append(condition("ModelLoaded", loaded, model.state or "ModelNotObserved", model.reason, when))
    status: dict[str, Any] = {"conditions": [*parts, _ready(parts, when)]}
    path = predict_path(name, str(translation.memo.get(MEMO_PROTOCOL) or "v1"))
    if missing is None:
        status["url"] = context.gateway_url + path
        status["address"] = {"url": context.gateway_url + path}
    return status
