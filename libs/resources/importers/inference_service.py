"""KServe InferenceService (serving.kserve.io/v1beta1) -> native resources.

Mapping (``N`` = metadata.name):
- single-model predictor with a built-in runtime: Model ``N`` requiring the format (lower-case);
  the MLServer-backed built-ins (sklearn, xgboost, lightgbm servers and kserve-mlserver) place it
  on the mlserver pool, the others also require their server (``triton``, ...) and carry a
  NotSupportedLocally problem naming the missing binary;
- with a user runtime ``R``: ServerConfig ``N-<R>`` from R's container, Server ``N-predictor``,
  and Model ``N`` on that server;
- multi-model predictor (no storage): Server ``N`` (ServerConfig ``mlserver``/``triton`` for a
  built-in, ``N-<R>`` for a user runtime) and no Model; TrainedModels load onto it;
- canaryTrafficPercent P below 100 with an earlier rolled-out version (kept in the memo): Model
  ``N`` stays the rolled-out version, Model ``N-canary`` is the latest, Experiment ``N`` splits
  100-P / P. Without P, at 100, or on first apply the latest is Model ``N`` and becomes the
  rolled-out version. P = 0 deploys the canary without traffic (no Experiment).
- transformer, explainer and custom predictor containers are accepted without natives, with a
  NotSupportedLocally problem naming the field.
The memo also carries the chosen runtime and protocol, which the status reports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.importers.base import (
    NOT_SUPPORTED_LOCALLY,
    ForeignDocument,
    ImportContext,
    Importer,
    NativeStatuses,
    Problem,
    StatusContext,
    Translation,
)
from modelplane.libs.resources.importers.kserve_predictor import PredictorPlan, parse_predictor
from modelplane.libs.resources.importers.kserve_runtimes import (
    CLUSTER_SERVING_RUNTIME,
    SERVING_RUNTIME,
    ModelRequest,
    Runtime,
    RuntimeCatalog,
    Selection,
    local_problem,
    select_runtime,
)
from modelplane.libs.resources.importers.kserve_status import (
    MEMO_PROTOCOL,
    MEMO_ROLLED_OUT,
    MEMO_RUNTIME,
    MEMO_RUNTIME_KIND,
    inference_service_status,
)
from modelplane.libs.resources.importers.kserve_templates import (
    TemplateValues,
    server_config_for,
    server_config_name,
)
from modelplane.libs.resources.importers.serving_runtime import namespace_of, stored_runtimes
from modelplane.libs.resources.manifests import parse_manifest, to_manifest
from modelplane.libs.resources.types import (
    NAME_MAX_LENGTH,
    Experiment,
    ExperimentCandidate,
    ExperimentSpec,
    Meta,
    Model,
    ModelSpec,
    Resource,
    Server,
    ServerSpec,
)

API_VERSION: Final = "serving.kserve.io/v1beta1"
KIND: Final = "InferenceService"
_ISVC_NAME: Final = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
CANARY_SUFFIX: Final = "-canary"
PREDICTOR_SUFFIX: Final = "-predictor"


def isvc_name(manifest: Mapping[str, Any]) -> str:
    metadata = manifest.get("metadata")
    if not isinstance(metadata, Mapping) or not metadata.get("name"):
        raise InvalidError("is required", field="metadata.name")
    name = str(metadata["name"])
    if not _ISVC_NAME.match(name) or len(name) > NAME_MAX_LENGTH:
        raise InvalidError(
            f"{name!r} is not a valid InferenceService name: lower-case letters, digits and '-', "
            f"starting with a letter, at most {NAME_MAX_LENGTH} characters",
            field="metadata.name",
        )
    return name


def derived_name(name: str, suffix: str) -> str:
    derived = f"{name}{suffix}"
    if len(derived) > NAME_MAX_LENGTH:
        raise InvalidError(
            f"too long: the native resource {derived} would exceed {NAME_MAX_LENGTH} characters "
            f"(keep the name to {NAME_MAX_LENGTH - len(suffix)})",
            field="metadata.name",
        )
    return derived


def _template_values(manifest: Mapping[str, Any], name: str) -> TemplateValues:
    metadata = manifest.get("metadata") or {}
    return TemplateValues(
        name=name,
        namespace=namespace_of(manifest),
        labels={str(k): str(v) for k, v in (metadata.get("labels") or {}).items()},
        annotations={str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()},
    )


@dataclass(frozen=True, slots=True)
class _Serving:
    """Where the model runs: resources to apply first, the Server the Model names ("" = the
    default pool) and what the Model requires."""

    infra: tuple[Resource, ...]
    server: str
    requirements: tuple[str, ...]
    problems: tuple[Problem, ...] = ()


def _server(name: str, config: str, plan: PredictorPlan) -> Server:
    scaling = plan.scaling
    spec = ServerSpec(
        server_config=config,
        replicas=scaling.replicas,
        min_replicas=scaling.min_replicas,
        max_replicas=scaling.max_replicas,
        memory_bytes=plan.memory_limit,
    )
    return Server(meta=Meta(name=name), spec=spec)


def _builtin_serving(name: str, runtime: Runtime, plan: PredictorPlan, field: str) -> _Serving:
    assert runtime.builtin is not None
    assert plan.request is not None
    backend = runtime.builtin
    fmt = plan.request.format_name.lower()
    requirements = (fmt,) if backend.mlserver else (fmt, backend.capability)
    problem = local_problem(runtime, field)
    problems = (problem,) if problem is not None else ()
    if not plan.multi_model:
        return _Serving(infra=(), server="", requirements=requirements, problems=problems)
    config = "mlserver" if backend.mlserver else ("triton" if backend.capability == "triton" else "")
    if not config:
        return _Serving(infra=(), server="", requirements=requirements, problems=problems)
    return _Serving(
        infra=(_server(name, config, plan),), server=name, requirements=requirements, problems=problems
    )


def _user_serving(
    manifest: Mapping[str, Any], name: str, runtime: Runtime, plan: PredictorPlan, field: str
) -> _Serving | Problem:
    assert plan.request is not None
    server_name = name if plan.multi_model else derived_name(name, PREDICTOR_SUFFIX)
    config = server_config_for(
        runtime,
        server_config_name(name, runtime.name),
        _template_values(manifest, name),
        plan.args,
        plan.env,
        field,
    )
    if isinstance(config, Problem):
        return config
    server = _server(server_name, config.meta.name, plan)
    return _Serving(
        infra=(config, server), server=server_name, requirements=(plan.request.format_name.lower(),)
    )


def _rollout(
    name: str, latest: Model, previous: Any, percent: int | None
) -> tuple[tuple[Resource, ...], dict[str, Any], str]:
    """(Models and Experiment, the rolled-out manifest to remember, a note)."""
    stable: Model | None = None
    if isinstance(previous, Mapping):
        try:
            parsed = parse_manifest(previous)
        except InvalidError:
            parsed = None  # remembered under older rules: start over from the latest
        if isinstance(parsed, Model):
            stable = parsed
    latest_manifest = to_manifest(latest)
    if stable is None or percent is None or percent >= 100 or stable.spec.same_version_as(latest.spec):
        why = "first version" if stable is None else "promoted" if percent in (None, 100) else "same version"
        return (latest,), latest_manifest, f"rollout: latest version takes 100% ({why})"
    canary_name = derived_name(name, CANARY_SUFFIX)
    canary = Model(meta=Meta(name=canary_name), spec=latest.spec)
    kept = to_manifest(stable)
    if percent == 0:
        return (stable, canary), kept, f"rollout: {canary_name} deployed with 0% of the traffic"
    experiment = Experiment(
        meta=Meta(name=name),
        spec=ExperimentSpec(
            candidates=(
                ExperimentCandidate(name=name, weight=100 - percent),
                ExperimentCandidate(name=canary_name, weight=percent),
            ),
            default=name,
        ),
    )
    note = f"rollout: canary {canary_name} takes {percent}%, rolled-out {name} keeps {100 - percent}%"
    return (stable, canary, experiment), kept, note


def _component_problems(spec: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for part in ("transformer", "explainer"):
        if spec.get(part) is not None:
            problems.append(
                Problem(
                    field=f"spec.{part}",
                    reason=NOT_SUPPORTED_LOCALLY,
                    message=f"the {part} is not run here (it is a container; no container runtime): "
                    "requests go to the predictor directly",
                )
            )
    return problems


def select_for(manifest: Mapping[str, Any], request: ModelRequest, context: ImportContext) -> Selection:
    """The runtime an InferenceService's predictor gets among the runtimes in ``context``."""
    catalog = RuntimeCatalog.of(
        stored_runtimes(context.foreign_of_kind(SERVING_RUNTIME), SERVING_RUNTIME, namespace_of(manifest)),
        stored_runtimes(context.foreign_of_kind(CLUSTER_SERVING_RUNTIME), CLUSTER_SERVING_RUNTIME),
    )
    return select_runtime(request, catalog)


class InferenceServiceImporter:
    api_versions: tuple[str, ...] = (API_VERSION,)
    kind: str = KIND
    depends_on: tuple[str, ...] = (SERVING_RUNTIME, CLUSTER_SERVING_RUNTIME)
    cluster_scoped: bool = False

    def translate(self, manifest: Mapping[str, Any], context: ImportContext) -> Translation:
        name = isvc_name(manifest)
        spec = manifest.get("spec")
        if not isinstance(spec, Mapping):
            raise InvalidError("is required" if spec is None else "must be a mapping", field="spec")
        plan = parse_predictor(spec.get("predictor"))
        problems = [*plan.problems, *_component_problems(spec)]
        notes = list(plan.notes)
        previous = context.memo().get(MEMO_ROLLED_OUT)
        carried: dict[str, Any] = {MEMO_ROLLED_OUT: previous} if previous is not None else {}
        if plan.request is None:
            return Translation(problems=tuple(problems), notes=tuple(notes), memo=carried)
        selection = select_for(manifest, plan.request, context)
        notes.append(selection.note)
        memo: dict[str, Any] = {**carried, MEMO_PROTOCOL: selection.protocol}
        runtime = selection.runtime
        if runtime is None:
            assert selection.problem is not None
            return Translation(problems=(*problems, selection.problem), notes=tuple(notes), memo=memo)
        memo[MEMO_RUNTIME] = runtime.name
        memo[MEMO_RUNTIME_KIND] = runtime.kind
        if selection.protocol.startswith("grpc-"):
            notes.append(f"protocol {selection.protocol}: clients use the gateway's V2 gRPC endpoint")
        field = plan.request.runtime_field if plan.request.runtime else plan.request.format_field
        serving = (
            _builtin_serving(name, runtime, plan, field)
            if runtime.builtin is not None
            else _user_serving(manifest, name, runtime, plan, field)
        )
        if isinstance(serving, Problem):
            problems.append(serving)
            return Translation(problems=tuple(problems), notes=tuple(notes), memo=memo)
        problems += serving.problems
        if plan.multi_model:
            where = (
                f"Server {serving.server}" if serving.server else "no server (none runs this runtime here)"
            )
            notes.append(f"multi-model: TrainedModels load onto {where}")
            return Translation(
                resources=serving.infra, problems=tuple(problems), notes=tuple(notes), memo=memo
            )
        if not plan.storage_uri:
            return Translation(problems=tuple(problems), notes=tuple(notes), memo=memo)
        latest = Model(
            meta=Meta(name=name),
            spec=ModelSpec(
                storage_uri=plan.storage_uri,
                requirements=serving.requirements,
                server=serving.server,
                secret_name=plan.secret_name,
                timeout_seconds=plan.timeout_seconds,
                autoscaling=plan.scaling.autoscaling,
                replicas=plan.scaling.replicas,
                min_replicas=plan.scaling.min_replicas,
                max_replicas=plan.scaling.max_replicas,
            ),
        )
        rollout, rolled_out, note = _rollout(name, latest, previous, plan.canary_percent)
        notes.append(note)
        memo[MEMO_ROLLED_OUT] = rolled_out
        return Translation(
            resources=(*serving.infra, *rollout),
            primary=name,
            notes=tuple(notes),
            problems=tuple(problems),
            memo=memo,
        )

    def status(
        self,
        document: ForeignDocument,
        translation: Translation,
        natives: NativeStatuses,
        context: StatusContext,
    ) -> dict[str, Any]:
        return inference_service_status(document, translation, natives, context)


INFERENCE_SERVICE_IMPORTER: Final = InferenceServiceImporter()

IMPORTERS: Final[tuple[Importer, ...]] = (INFERENCE_SERVICE_IMPORTER,)
