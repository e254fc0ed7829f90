"""An InferenceService's predictor read into a plan: which implementation, which model format and
protocol it asks of a runtime, where the model is stored, single- or multi-model, and scaling.

Rules from KServe v1beta1 (predictor.go, component.go, inference_service_defaults.go):
- exactly one implementation: ``model``, a framework shorthand (rewritten to ``model`` with
  ``modelFormat.name`` = the framework), or a custom container (one named kserve-container, else
  the first container when nothing else is given);
- protocolVersion defaults to v2 for the triton, onnx and huggingface shorthands and for the
  triton and vLLM formats; otherwise it is left to the runtime (selection assumes v1);
- multi-model (TrainedModels load onto it) when there is no storageUri, storage or
  storageUris, except huggingface, which is never multi-model;
- minReplicas defaults to 1 (0 allowed), maxReplicas 0 = no limit, else >= minReplicas;
  canaryTrafficPercent within 0..100.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import Field

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.bounds import Int32, Int64
from modelplane.libs.resources.importers.base import NOT_SUPPORTED_LOCALLY, Problem
from modelplane.libs.resources.importers.kserve_runtimes import PROTOCOLS, ModelRequest
from modelplane.libs.resources.manifest_base import Lenient, validate_model
from modelplane.libs.resources.quantity import parse_bytes
from modelplane.libs.resources.types import AUTOSCALING_METRICS, Autoscaling

SHORTHANDS: Final = (
    "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml", "lightgbm", "paddle",
)  # fmt: skip
_V2_SHORTHANDS: Final = ("triton", "onnx", "huggingface")
_V2_FORMATS: Final = ("triton", "vLLM")
SCALE_METRICS: Final = ("cpu", "memory", "concurrency", "rps")
KSERVE_CONTAINER: Final = "kserve-container"
DEFAULT_MIN_REPLICAS: Final = 1
PREDICTOR: Final = "spec.predictor"


class _Storage(Lenient):
    key: str | None = None
    path: str | None = None
    parameters: dict[str, str] | None = None


class _Resources(Lenient):
    limits: dict[str, str | int | float] = Field(default_factory=dict)
    requests: dict[str, str | int | float] = Field(default_factory=dict)


class _EnvVar(Lenient):
    name: str
    value: str | None = None


class _Extension(Lenient):
    """What a framework shorthand holds (KServe's PredictorExtensionSpec)."""

    storageUri: str | None = None
    runtimeVersion: str | None = None
    protocolVersion: str | None = None
    storage: _Storage | None = None
    resources: _Resources | None = None
    args: list[str] = Field(default_factory=list)
    env: list[_EnvVar] = Field(default_factory=list)


class _ModelFormat(Lenient):
    name: str
    version: str | None = None


class _Model(_Extension):
    modelFormat: _ModelFormat
    runtime: str | None = None


class _StorageUri(Lenient):
    uri: str
    mountPath: str


class _PredictorExtension(Lenient):
    """The component fields shared by every implementation (ComponentExtensionSpec)."""

    containers: list[dict[str, Any]] = Field(default_factory=list)
    storageUris: list[_StorageUri] = Field(default_factory=list)
    minReplicas: Int32 | None = None
    maxReplicas: Int32 | None = None
    scaleTarget: Int32 | None = None
    scaleMetric: str | None = None
    canaryTrafficPercent: Int64 | None = None
    timeout: Int64 | None = None


@dataclass(frozen=True, slots=True)
class Scaling:
    replicas: int
    min_replicas: int
    max_replicas: int
    autoscaling: Autoscaling | None = None


@dataclass(frozen=True, slots=True)
class PredictorPlan:
    """What the predictor asks for. ``request`` is None for a custom container (not run here)."""

    implementation: str
    # Where the implementation is (spec.predictor.model, spec.predictor.sklearn, ...).
    location: str
    request: ModelRequest | None
    scaling: Scaling
    storage_uri: str = ""
    secret_name: str = ""
    multi_model: bool = False
    # The predictor container's memory limit (what TrainedModels are checked against).
    memory_limit: int = 0
    canary_percent: int | None = None
    timeout_seconds: float = 0.0
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()


def implementations(predictor: Mapping[str, Any]) -> list[str]:
    """The implementation keys given, in KServe's order (a custom container as "containers")."""
    found = [key for key in (*SHORTHANDS, "model") if predictor.get(key) is not None]
    containers = predictor.get("containers") or []
    if isinstance(containers, list) and containers:
        named = sum(1 for c in containers if isinstance(c, Mapping) and c.get("name") == KSERVE_CONTAINER)
        found += ["containers"] * named
        if not found:
            found.append("containers")
    return found


def parse_predictor(raw: Any) -> PredictorPlan:
    if raw is None:
        raise InvalidError("is required", field=PREDICTOR)
    if not isinstance(raw, Mapping):
        raise InvalidError(f"must be a mapping, got {type(raw).__name__}", field=PREDICTOR)
    extension: _PredictorExtension = validate_model(_PredictorExtension, raw, PREDICTOR)
    found = implementations(raw)
    if not found:
        raise InvalidError(
            f"exactly one of [model, {', '.join(SHORTHANDS)}, or a kserve-container] must be specified",
            field=PREDICTOR,
        )
    if len(found) > 1:
        raise InvalidError(
            f"exactly one predictor implementation may be given, found {' and '.join(found)}",
            field=f"{PREDICTOR}.{found[1]}",
        )
    implementation = found[0]
    scaling, scaling_problems = _scaling(extension)
    canary = extension.canaryTrafficPercent
    if canary is not None and not 0 <= canary <= 100:
        raise InvalidError(
            f"must be between 0 and 100, got {canary}", field=f"{PREDICTOR}.canaryTrafficPercent"
        )
    if extension.timeout is not None and extension.timeout <= 0:
        raise InvalidError(f"must be > 0 seconds, got {extension.timeout}", field=f"{PREDICTOR}.timeout")
    timeout = float(extension.timeout or 0)
    where = f"{PREDICTOR}.{implementation}"
    if implementation == "containers":
        return PredictorPlan(
            implementation=implementation,
            location=where,
            request=None,
            scaling=scaling,
            problems=(
                *scaling_problems,
                Problem(
                    field=where,
                    reason=NOT_SUPPORTED_LOCALLY,
                    message="a custom predictor container is not run here (no container runtime); "
                    "use model with a modelFormat, or a ServingRuntime whose command runs locally",
                ),
            ),
        )
    given: _Extension
    if implementation == "model":
        model: _Model = validate_model(_Model, raw["model"], where)
        given = model
        name, version = model.modelFormat.name.strip(), (model.modelFormat.version or "").strip()
        if not name:
            raise InvalidError("must not be empty", field=f"{where}.modelFormat.name")
        runtime = (model.runtime or "").strip()
        format_field = f"{where}.modelFormat.name"
        v2_default = name in _V2_FORMATS
    else:
        given = validate_model(_Extension, raw[implementation], where)
        name, version, runtime, format_field = implementation, "", "", where
        v2_default = implementation in _V2_SHORTHANDS
    protocol = (given.protocolVersion or "").strip()
    if protocol and protocol not in PROTOCOLS:
        raise InvalidError(
            f"must be one of {', '.join(PROTOCOLS)}, got {protocol!r}", field=f"{where}.protocolVersion"
        )
    notes: list[str] = []
    if not protocol and v2_default:
        protocol = "v2"
        notes.append(f"protocolVersion: v2 (KServe's default for {name})")
    storage_uri, secret, storage_problems = _storage(given, extension, where)
    has_storage = bool((given.storageUri or "").strip() or given.storage is not None or extension.storageUris)
    huggingface = name == "huggingface"
    limits = given.resources.limits if given.resources is not None else {}
    memory_limit = parse_bytes(limits.get("memory"), f"{where}.resources.limits.memory")
    return PredictorPlan(
        implementation=implementation,
        location=where,
        request=ModelRequest(
            format_name=name,
            format_version=version,
            protocol=protocol,
            runtime=runtime,
            format_field=format_field,
            runtime_field=f"{where}.runtime",
            protocol_field=f"{where}.protocolVersion",
        ),
        scaling=scaling,
        storage_uri=storage_uri,
        secret_name=secret,
        multi_model=not has_storage and not huggingface,
        memory_limit=memory_limit,
        canary_percent=None if canary is None else int(canary),
        timeout_seconds=timeout,
        args=tuple(given.args),
        env={e.name: e.value for e in given.env if e.value is not None},
        problems=(*scaling_problems, *storage_problems),
        notes=tuple(notes),
    )


def _storage(given: _Extension, extension: _PredictorExtension, where: str) -> tuple[str, str, list[Problem]]:
    """(storageUri, secretName, problems). ``storage`` is mapped when its parameters carry the
    type and bucket (KServe reads them from the storage-config secret otherwise, which is not
    read here); ``key`` names the credentials."""
    uri = (given.storageUri or "").strip()
    storage = given.storage
    if storage is not None:
        path = (storage.path or "").strip()
        if uri and path:
            raise InvalidError(
                "must provide only one of storageUri and storage.path", field=f"{where}.storage.path"
            )
        secret = (storage.key or "").strip()
        if uri:
            return uri, secret, []
        params = storage.parameters or {}
        kind, bucket = params.get("type", "").strip(), params.get("bucket", "").strip()
        if kind and bucket and path:
            return f"{kind}://{bucket}/{path.lstrip('/')}", secret, []
        return (
            "",
            secret,
            [
                Problem(
                    field=f"{where}.storage",
                    reason=NOT_SUPPORTED_LOCALLY,
                    message="the storage type and bucket live in KServe's storage-config secret, which is "
                    "not read here: give storage.parameters.type and .bucket with storage.path, or a storageUri",
                )
            ],
        )
    if uri:
        return uri, "", []
    uris = extension.storageUris
    if len(uris) == 1:
        return uris[0].uri.strip(), "", []
    if len(uris) > 1:
        return (
            "",
            "",
            [
                Problem(
                    field=f"{PREDICTOR}.storageUris",
                    reason=NOT_SUPPORTED_LOCALLY,
                    message=f"{len(uris)} artifacts for one model: a native Model has one storageUri",
                )
            ],
        )
    return "", "", []


def _scaling(extension: _PredictorExtension) -> tuple[Scaling, list[Problem]]:
    """Replicas start at max(minReplicas, 1) (Knative's initial scale is 1); with scaleMetric
    concurrency or rps (or only a scaleTarget: Knative's default metric) the native autoscaler
    takes over within [min, max]; cpu and memory are not measured here."""
    minimum = DEFAULT_MIN_REPLICAS if extension.minReplicas is None else extension.minReplicas
    maximum = extension.maxReplicas or 0
    if minimum < 0:
        raise InvalidError("'MinReplicas' cannot be less than 0", field=f"{PREDICTOR}.minReplicas")
    if maximum < 0:
        raise InvalidError("'MaxReplicas' cannot be less than 0", field=f"{PREDICTOR}.maxReplicas")
    if maximum and minimum > maximum:
        raise InvalidError(
            f"'MinReplicas' ({minimum}) cannot be greater than MaxReplicas ({maximum})",
            field=f"{PREDICTOR}.minReplicas",
        )
    metric = (extension.scaleMetric or "").strip()
    if metric and metric not in SCALE_METRICS:
        raise InvalidError(
            f"must be one of {', '.join(SCALE_METRICS)}, got {metric!r}", field=f"{PREDICTOR}.scaleMetric"
        )
    target = extension.scaleTarget
    if target is not None and target <= 0:
        raise InvalidError(f"must be > 0, got {target}", field=f"{PREDICTOR}.scaleTarget")
    problems: list[Problem] = []
    autoscaling: Autoscaling | None = None
    if metric in ("cpu", "memory"):
        problems.append(
            Problem(
                field=f"{PREDICTOR}.scaleMetric",
                reason=NOT_SUPPORTED_LOCALLY,
                message=f"scaling on {metric} is not measured here (only {' and '.join(AUTOSCALING_METRICS)}); "
                "replicas stay at minReplicas",
            )
        )
    elif metric or target is not None:
        defaults = Autoscaling()
        autoscaling = Autoscaling(
            metric=metric or AUTOSCALING_METRICS[0],
            target_requests=float(target) if target is not None else defaults.target_requests,
        )
    return Scaling(
        replicas=max(minimum, 1), min_replicas=minimum, max_replicas=maximum, autoscaling=autoscaling
    ), problems
