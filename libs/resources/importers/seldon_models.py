"""One prepackaged SeldonDeployment graph node -> the native ModelSpec that serves it.

- requirements follow the server that runs the implementation (Seldon v2's capability names):
  the MLServer ones (SKLEARN, XGBOOST, MLFLOW, HUGGINGFACE) land on the default MLServer pool;
  TRITON_SERVER and TENSORFLOW_SERVER need a Triton server, reported as not runnable here (no
  tritonserver, no tf-serving) while the Model is still produced so it runs wherever one exists;
- ``modelUri`` -> ``storageUri`` for every scheme the storage service fetches (gs, s3, Azure
  blob https URLs, http(s), file, local paths, pvc, hf). An rclone remote (``mys3:bucket/path``)
  names a section of an rclone config we do not have: refused, naming the field, with what to
  write instead. A HUGGINGFACE_SERVER without a modelUri loads ``pretrained_model`` from the
  Hub: ``hf://<pretrained_model>``;
- ``envSecretRefName`` -> ``secretName``; absent -> "" so the storage service's operator-wide
  default (MODELPLANE_STORAGE_DEFAULT_SECRET_NAME, Seldon's defaultEnvSecretRefName) applies,
  and with no default the fetch is anonymous (naming Seldon's default secret here would fail
  every load where no such secret exists);
- ``parameters`` -> Model parameters (values as strings; MLServer receives them in its model
  settings). SKLEARN_SERVER's ``method`` (predict | predict_proba | transform) becomes MLServer's
  ``extra.predict_fn``; without one, a deployment on the seldon protocol gets ``predict_proba``,
  which Seldon's own sklearn server answered by default (its v2 protocol ran MLServer, which
  answers ``predict``, so v2/kfserving deployments keep that);
- memory from the node's container in componentSpecs (requests, else limits);
- replicas by Seldon's precedence (componentSpec, predictor, spec, 1), or an hpaSpec/kedaSpec's
  range with native concurrency autoscaling (their cpu/memory/trigger metrics are not acted on).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.importers.base import NOT_SUPPORTED_LOCALLY, Problem
from modelplane.libs.resources.importers.seldon_types import HUGGINGFACE_SERVER, Deployment, Predictor, Unit
from modelplane.libs.resources.types import Autoscaling, ModelSpec
from modelplane.libs.uris import redact_uri

# Prepackaged implementation -> the requirements of the native Model.
REQUIREMENTS: Final[dict[str, tuple[str, ...]]] = {
    "SKLEARN_SERVER": ("sklearn",),
    "XGBOOST_SERVER": ("xgboost",),
    "MLFLOW_SERVER": ("mlflow",),
    HUGGINGFACE_SERVER: ("huggingface",),
    "TRITON_SERVER": ("triton",),
    "TENSORFLOW_SERVER": ("tensorflow",),
}
NEEDS_TRITON: Final = frozenset({"TRITON_SERVER", "TENSORFLOW_SERVER"})
TEMPO_SERVER: Final = "TEMPO_SERVER"

# Schemes the storage service fetches (services/storage/fetchers); Azure blob is an https URL.
STORAGE_SCHEMES: Final = ("gs", "s3", "http", "https", "file", "pvc", "hf")
_SCHEME: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# rclone's "remote:path" (a config section name, a colon, a path; no "//").
_RCLONE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_. -]*:(?!//)")


@dataclass(frozen=True, slots=True)
class NodeModel:
    """The ModelSpec of one node, and what the translation should say about it."""

    spec: ModelSpec
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()


def node_model(unit: Unit, predictor: Predictor, deployment: Deployment) -> NodeModel:
    """The Model of a prepackaged node (its implementation is one of ``REQUIREMENTS``)."""
    problems: list[Problem] = []
    notes: list[str] = []
    implementation = unit.implementation
    if implementation in NEEDS_TRITON:
        server = "tritonserver" if implementation == "TRITON_SERVER" else "tensorflow-serving"
        problems.append(
            Problem(
                field=f"{unit.path}.implementation",
                reason=NOT_SUPPORTED_LOCALLY,
                message=(
                    f"node {unit.name}: {implementation} needs a Triton server and {server} is not "
                    "available here; the Model (requirement "
                    f"{REQUIREMENTS[implementation][0]}) is scheduled wherever a triton server runs"
                ),
            )
        )
    component = predictor.component_of(unit.name)
    replicas = _first(
        component.replicas if component is not None else None,
        predictor.replicas,
        deployment.replicas,
        default=1,
    )
    minimum, maximum = 0, 0
    autoscaling: Autoscaling | None = None
    scaling = component.scaling if component is not None else None
    if scaling is not None:
        # Seldon ignores replicas when an autoscaler is set; start at its minimum (at least 1).
        replicas, minimum, maximum = max(1, scaling.minimum), scaling.minimum, scaling.maximum
        autoscaling = Autoscaling()
        metrics = ", ".join(scaling.metrics) or "none"
        problems.append(
            Problem(
                field=f"{scaling.path}.{'metrics' if scaling.source == 'hpaSpec' else 'triggers'}",
                reason=NOT_SUPPORTED_LOCALLY,
                message=(
                    f"node {unit.name}: the {scaling.source} range {scaling.minimum}..{scaling.maximum} "
                    f"is kept but its metrics ({metrics}) are not acted on here; the local autoscaler "
                    f"follows requests in flight ({autoscaling.target_requests:g} per replica)"
                ),
            )
        )
    memory = component.memory.get(unit.name, 0) if component is not None else 0
    storage = _storage_uri(unit)
    if not unit.model_uri:
        notes.append(f"node {unit.name}: no modelUri; {HUGGINGFACE_SERVER} loads {storage} from the Hub")
    if unit.secret_name:
        notes.append(f"node {unit.name}: credentials from secret {unit.secret_name} (envSecretRefName)")
    spec = ModelSpec(
        storage_uri=storage,
        requirements=REQUIREMENTS[implementation],
        memory_bytes=memory,
        replicas=replicas,
        min_replicas=minimum,
        max_replicas=maximum,
        parameters=_parameters(unit, deployment, notes),
        secret_name=unit.secret_name,
        timeout_seconds=deployment.timeout_seconds,
        autoscaling=autoscaling,
    )
    return NodeModel(spec=spec, problems=tuple(problems), notes=tuple(notes))


# What MLServer's sklearn runtime can answer (its predict_fn); Seldon's `method` parameter names one.
SKLEARN_METHODS: Final = ("predict", "predict_proba", "transform")
# The model-settings key MLServer's sklearn runtime reads (a Model parameter "extra.<key>" lands
# in model-settings parameters.extra; see services/placement/runtimes/layouts.py).
PREDICT_FN: Final = "extra.predict_fn"


def _parameters(unit: Unit, deployment: Deployment, notes: list[str]) -> dict[str, str]:
    parameters = {p.name: p.value for p in unit.parameters}
    if unit.implementation != "SKLEARN_SERVER":
        return parameters
    method = parameters.pop("method", None)
    if method is not None and method not in SKLEARN_METHODS:
        index = next(i for i, p in enumerate(unit.parameters) if p.name == "method")
        raise InvalidError(
            f"SKLEARN_SERVER's method must be one of {', '.join(SKLEARN_METHODS)}, got {method!r}",
            field=f"{unit.path}.parameters[{index}].value",
        )
    if method is None and deployment.protocol == "seldon":
        method = "predict_proba"
        notes.append(f"node {unit.name}: answers predict_proba (Seldon's SKLEARN_SERVER default)")
    if method is not None:
        parameters[PREDICT_FN] = method
    return parameters


def _first(*values: int | None, default: int) -> int:
    return next((v for v in values if v is not None), default)


def _storage_uri(unit: Unit) -> str:
    uri = unit.model_uri
    field = f"{unit.path}.modelUri"
    if not uri:
        pretrained = unit.parameter("pretrained_model")
        if pretrained is None or not pretrained.value.strip():
            raise InvalidError(
                f"{HUGGINGFACE_SERVER} needs a modelUri or a pretrained_model parameter naming a Hub model",
                field=field,
            )
        return f"hf://{pretrained.value.strip()}"
    match = _SCHEME.match(uri)
    if match:
        if match.group(1).lower() not in STORAGE_SCHEMES:
            raise InvalidError(
                f"{redact_uri(uri)!r}: scheme {match.group(1)!r} is not supported (supported: "
                f"{', '.join(s + '://' for s in STORAGE_SCHEMES)}, or a local path)",
                field=field,
            )
        return uri
    if not uri.startswith("/") and _RCLONE.match(uri):
        remote = uri.split(":", 1)[0]
        raise InvalidError(
            f"{uri!r} is an rclone remote ({remote}:), which names a section of an rclone config "
            "this installation does not read; write the bucket URL instead (s3://bucket/path or "
            "gs://bucket/path) and put the remote's credentials in the secret named by "
            "envSecretRefName",
            field=field,
        )
    return uri
