"""Manifests as users write them -> domain resources (``parse_manifest``); the way back,
``to_manifest``, is rendering.py's and is re-exported here.

Pydantic lives here only: it validates a manifest's shape; we then turn it into frozen domain
dataclasses. Accepted formats:
- native ``modelplane.io/v1alpha1`` Model / Server / ServerConfig / Experiment (unknown fields
  are errors: a typo must not be silently ignored);
- Seldon Core v2 ``mlops.seldon.io/v1alpha1`` Model / Server / ServerConfig / Experiment,
  unchanged (fields we do not act on, such as ``dedicated`` or ``logger``, are accepted and
  ignored, as moving users carry them).
Both forms also read a Model's ``loadBalancing`` in KubeAI's shape (``strategy`` RoundRobin |
LeastLoad | PrefixHash, ``prefixHash`` {meanLoadFactor (percent), replication,
prefixCharLength}); the gateway balances that model's traffic accordingly.
An Experiment is checked as Seldon checks it: at least one candidate or a mirror, candidate
weights > 0, mirror percent 0..100, no name twice (the mirror counts), ``default`` one of the
candidates. That one resource is the baseline of at most one experiment needs every experiment,
so the api checks it.
Pipelines (native or Seldon; Seldon's ``dataflow`` and other unknown fields are ignored there)
and InferenceGraphs (native or KServe ``serving.kserve.io/v1alpha1``) have their models in
``flow_manifests``; the pydantic bases shared by every kind are in ``manifest_base``.
A resource's ``metadata.namespace`` is kept; outside ``default`` its name and the names it refers
to become the services' ``<namespace>--<name>`` (namespacing.py).
Every error is an ``InvalidError`` whose ``field`` is the dotted path of the offending field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field, field_validator

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.bounds import Int32
from modelplane.libs.resources.flow_manifests import (
    KServeInferenceGraphSpec,
    NativeInferenceGraphSpec,
    NativePipelineSpec,
    SeldonPipelineSpec,
)
from modelplane.libs.resources.manifest_base import Lenient, Strict, validate_model
from modelplane.libs.resources.namespacing import (
    CLUSTER_WIDE,
    check_namespace,
    into_namespace,
    is_default,
)
from modelplane.libs.resources.quantity import parse_bytes

# The way back (resource -> manifest) is rendering.py's; both directions are one import away.
from modelplane.libs.resources.rendering import NATIVE_API, to_manifest
from modelplane.libs.resources.types import (
    AUTOSCALING_METRICS,
    BALANCING_STRATEGIES,
    EXPERIMENT_RESOURCE_TYPES,
    KINDS,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    RUNTIMES,
    Autoscaling,
    Experiment,
    ExperimentCandidate,
    ExperimentMirror,
    ExperimentSpec,
    InferenceGraph,
    Kind,
    LoadBalancing,
    Meta,
    Model,
    ModelSpec,
    Pipeline,
    PrefixHashOptions,
    Resource,
    Server,
    ServerConfig,
    ServerConfigSpec,
    ServerSpec,
)

SELDON_API = "mlops.seldon.io/v1alpha1"
KSERVE_API = "serving.kserve.io/v1alpha1"
SUPPORTED_APIS = (NATIVE_API, SELDON_API, KSERVE_API)
# The kinds each apiVersion defines (KServe's v1alpha1 is read for its InferenceGraph only).
_API_KINDS: Mapping[str, tuple[Kind, ...]] = {
    NATIVE_API: KINDS,
    SELDON_API: ("Model", "Server", "ServerConfig", "Experiment", "Pipeline"),
    KSERVE_API: ("InferenceGraph",),
}


class _Metadata(Lenient):
    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if len(value) > NAME_MAX_LENGTH:
            raise ValueError(f"must be at most {NAME_MAX_LENGTH} characters")
        if not NAME_PATTERN.match(value):
            raise ValueError(
                f"{value!r} is not a valid name: use lower-case letters, digits and '-', "
                "starting and ending with a letter or digit (^[a-z0-9]([-a-z0-9]*[a-z0-9])?$)"
            )
        return value


class _Parameter(Lenient):
    name: str
    value: str


class _Explainer(Lenient):
    type: str | None = None
    modelRef: str | None = None
    pipelineRef: str | None = None


class _PrefixHash(Strict):
    meanLoadFactor: Int32 | None = None
    replication: Int32 | None = None
    prefixCharLength: Int32 | None = None


class _LoadBalancing(Strict):
    """KubeAI's ``loadBalancing`` (its field names and units: meanLoadFactor is a percentage)."""

    strategy: str | None = None
    prefixHash: _PrefixHash | None = None

    def to_domain(self) -> LoadBalancing:
        strategy = self.strategy or BALANCING_STRATEGIES[0]
        if strategy not in BALANCING_STRATEGIES:
            raise InvalidError(
                f"must be one of {', '.join(BALANCING_STRATEGIES)}, got {strategy!r}",
                field="spec.loadBalancing.strategy",
            )
        defaults = PrefixHashOptions()
        given = self.prefixHash or _PrefixHash()
        options = PrefixHashOptions(
            mean_load_factor_percent=_at_least(
                given.meanLoadFactor,
                defaults.mean_load_factor_percent,
                100,
                "meanLoadFactor",
                " (a percentage: 125 = 1.25 x the mean load)",
            ),
            replication=_at_least(given.replication, defaults.replication, 1, "replication"),
            prefix_char_length=_at_least(
                given.prefixCharLength, defaults.prefix_char_length, 1, "prefixCharLength"
            ),
        )
        return LoadBalancing(strategy=strategy, prefix_hash=options)


def _at_least(value: int | None, default: int, minimum: int, name: str, unit: str = "") -> int:
    if value is None:
        return default
    if value < minimum:
        raise InvalidError(
            f"must be >= {minimum}{unit}, got {value}", field=f"spec.loadBalancing.prefixHash.{name}"
        )
    return value


def _scaling_check(replicas: int | None, min_r: int | None, max_r: int | None) -> None:
    for label, value in (("replicas", replicas), ("minReplicas", min_r), ("maxReplicas", max_r)):
        if value is not None and value < 0:
            raise InvalidError(f"must be >= 0, got {value}", field=f"spec.{label}")
    if replicas is not None and min_r is not None and replicas < min_r:
        raise InvalidError(f"replicas {replicas} is below minReplicas {min_r}", field="spec.replicas")
    if replicas is not None and max_r and replicas > max_r:
        raise InvalidError(f"replicas {replicas} is above maxReplicas {max_r}", field="spec.replicas")
    if min_r is not None and max_r and min_r > max_r:
        raise InvalidError(f"minReplicas {min_r} is above maxReplicas {max_r}", field="spec.minReplicas")


class _Autoscaling(Strict):
    """KubeAI's autoscaling fields (``targetRequests``, ``scaleDownDelaySeconds``,
    ``autoscalingDisabled`` as ``disabled``), plus KServe's ``scaleMetric`` and ``scaleTarget``
    (the same number as ``targetRequests``, under KServe's name: either may be given)."""

    targetRequests: float | None = None
    scaleTarget: float | None = None
    scaleDownDelaySeconds: float | None = None
    scaleMetric: str | None = None
    disabled: bool = False

    def to_domain(self) -> Autoscaling:
        defaults = Autoscaling()
        if (
            self.targetRequests is not None
            and self.scaleTarget is not None
            and self.targetRequests != self.scaleTarget
        ):
            raise InvalidError(
                f"targetRequests {self.targetRequests:g} and scaleTarget {self.scaleTarget:g} name the"
                " same number differently; give one of them",
                field="spec.autoscaling.scaleTarget",
            )
        given = self.targetRequests if self.targetRequests is not None else self.scaleTarget
        name = (
            "targetRequests" if self.targetRequests is not None or self.scaleTarget is None else "scaleTarget"
        )
        target = defaults.target_requests if given is None else given
        if target <= 0:
            raise InvalidError(f"must be > 0, got {target:g}", field=f"spec.autoscaling.{name}")
        delay = (
            defaults.scale_down_delay_seconds
            if self.scaleDownDelaySeconds is None
            else self.scaleDownDelaySeconds
        )
        if delay < 0:
            raise InvalidError(
                f"must be >= 0 seconds, got {delay:g}", field="spec.autoscaling.scaleDownDelaySeconds"
            )
        metric = self.scaleMetric or defaults.metric
        if metric not in AUTOSCALING_METRICS:
            raise InvalidError(
                f"must be one of {', '.join(AUTOSCALING_METRICS)}, got {metric!r}",
                field="spec.autoscaling.scaleMetric",
            )
        return Autoscaling(
            target_requests=target, scale_down_delay_seconds=delay, metric=metric, disabled=self.disabled
        )


class _ModelSpecBase(BaseModel):
    storageUri: str
    artifactVersion: str | int | None = None
    requirements: list[str] = Field(default_factory=list)
    memory: str | int | None = None
    replicas: Int32 | None = None
    minReplicas: Int32 | None = None
    maxReplicas: Int32 | None = None
    server: str | None = None
    parameters: list[_Parameter] | dict[str, str] = Field(default_factory=list)
    secretName: str | None = None
    explainer: _Explainer | None = None
    parallelWorkers: Int32 | None = None
    loadBalancing: _LoadBalancing | None = None
    # Seconds the gateway waits for one inference answer (KServe's component ``timeout``).
    timeoutSeconds: float | None = None
    autoscaling: _Autoscaling | None = None

    @field_validator("storageUri")
    @classmethod
    def _uri_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    def to_domain(self) -> ModelSpec:
        _scaling_check(self.replicas, self.minReplicas, self.maxReplicas)
        params = (
            dict(self.parameters)
            if isinstance(self.parameters, dict)
            else {p.name: p.value for p in self.parameters}
        )
        return ModelSpec(
            storage_uri=self.storageUri,
            artifact_version="" if self.artifactVersion is None else str(self.artifactVersion),
            requirements=tuple(r.strip() for r in self.requirements if r.strip()),
            memory_bytes=parse_bytes(self.memory, "spec.memory"),
            replicas=1 if self.replicas is None else self.replicas,
            min_replicas=self.minReplicas or 0,
            max_replicas=self.maxReplicas or 0,
            server=self.server or "",
            parameters=params,
            secret_name=self.secretName or "",
            explainer_for=(self.explainer.modelRef or "") if self.explainer else "",
            parallel_workers=self.parallelWorkers or 0,
            load_balancing=(self.loadBalancing or _LoadBalancing()).to_domain(),
            timeout_seconds=_timeout(self.timeoutSeconds),
            autoscaling=self.autoscaling.to_domain() if self.autoscaling is not None else None,
        )


class NativeModelSpec(_ModelSpecBase, Strict):
    pass


class SeldonModelSpec(_ModelSpecBase, Lenient):
    pass


class _ServerSpecBase(BaseModel):
    serverConfig: str
    capabilities: list[str] = Field(default_factory=list)
    extraCapabilities: list[str] = Field(default_factory=list)
    replicas: Int32 | None = None
    minReplicas: Int32 | None = None
    maxReplicas: Int32 | None = None
    disableAutoUpdate: bool = False

    def to_domain(self, memory_bytes: int = 0, env: Mapping[str, str] | None = None) -> ServerSpec:
        _scaling_check(self.replicas, self.minReplicas, self.maxReplicas)
        return ServerSpec(
            server_config=self.serverConfig,
            capabilities=tuple(c.strip() for c in self.capabilities if c.strip()),
            extra_capabilities=tuple(c.strip() for c in self.extraCapabilities if c.strip()),
            replicas=1 if self.replicas is None else self.replicas,
            min_replicas=self.minReplicas or 0,
            max_replicas=self.maxReplicas or 0,
            disable_auto_update=self.disableAutoUpdate,
            memory_bytes=memory_bytes,
            env=dict(env or {}),
        )


class NativeServerSpec(_ServerSpecBase, Strict):
    memory: str | int | None = None
    env: dict[str, str] = Field(default_factory=dict)


class SeldonServerSpec(_ServerSpecBase, Lenient):
    pass


class NativeServerConfigSpec(Strict):
    runtime: str = "mlserver"
    capabilities: list[str] = Field(default_factory=list)
    memory: str | int | None = None
    overcommitPercent: Int32 = 0
    env: dict[str, str] = Field(default_factory=dict)
    args: list[str] = Field(default_factory=list)
    command: list[str] = Field(default_factory=list)
    parallelWorkers: Int32 = 0

    def to_domain(self) -> ServerConfigSpec:
        if self.runtime not in RUNTIMES:
            raise InvalidError(
                f"must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}", field="spec.runtime"
            )
        if self.runtime == "custom" and not self.command:
            raise InvalidError("a custom runtime needs a command", field="spec.command")
        if self.overcommitPercent < 0:
            raise InvalidError("must be >= 0", field="spec.overcommitPercent")
        return ServerConfigSpec(
            runtime=self.runtime,
            capabilities=tuple(c.strip() for c in self.capabilities if c.strip()),
            memory_bytes=parse_bytes(self.memory, "spec.memory"),
            overcommit_percent=self.overcommitPercent,
            env=dict(self.env),
            args=tuple(self.args),
            command=tuple(self.command),
            parallel_workers=self.parallelWorkers,
        )


class SeldonServerConfigSpec(Lenient):
    """Seldon's ServerConfig is a pod template; we read the runtime, capabilities and memory off it."""

    podSpec: dict[str, Any] = Field(default_factory=dict)

    def to_domain(self) -> ServerConfigSpec:
        runtime, memory, overcommit = "mlserver", 0, 0
        caps: tuple[str, ...] = ()
        env: dict[str, str] = {}
        for container in self.podSpec.get("containers", []) or []:
            image = str(container.get("image", ""))
            name = str(container.get("name", ""))
            if "triton" in image or name == "triton":
                runtime = "triton"
            for var in container.get("env", []) or []:
                key, value = str(var.get("name", "")), var.get("value")
                if value is None:
                    continue
                if key == "SELDON_SERVER_CAPABILITIES":
                    caps = tuple(c.strip() for c in str(value).split(",") if c.strip())
                elif key == "SELDON_OVERCOMMIT_PERCENTAGE":
                    overcommit = int(value)
                elif name not in ("agent", "rclone"):
                    env[key] = str(value)
            requests = (container.get("resources") or {}).get("requests") or {}
            if name in ("mlserver", "triton") and requests.get("memory"):
                memory = parse_bytes(requests["memory"], "spec.podSpec.containers.resources.requests.memory")
        return ServerConfigSpec(
            runtime=runtime, capabilities=caps, memory_bytes=memory, overcommit_percent=overcommit, env=env
        )


class _Candidate(Strict):
    name: str
    weight: Int32


class _Mirror(Strict):
    name: str
    percent: Int32


def _member_name(value: str, field: str) -> str:
    if not NAME_PATTERN.match(value) or len(value) > NAME_MAX_LENGTH:
        raise InvalidError(f"{value!r} is not a valid model or pipeline name", field=field)
    return value


class _ExperimentSpecBase(BaseModel):
    default: str | None = None
    # Items are validated one by one so an error names its index (spec.candidates[1].weight).
    candidates: list[Any] = Field(default_factory=list)
    mirror: Any = None
    resourceType: str | None = None

    def to_domain(self) -> ExperimentSpec:
        resource_type = self.resourceType or EXPERIMENT_RESOURCE_TYPES[0]
        if resource_type not in EXPERIMENT_RESOURCE_TYPES:
            raise InvalidError(
                f"must be one of {', '.join(EXPERIMENT_RESOURCE_TYPES)}, got {resource_type!r}",
                field="spec.resourceType",
            )
        candidates: list[ExperimentCandidate] = []
        for index, item in enumerate(self.candidates):
            where = f"spec.candidates[{index}]"
            given: _Candidate = validate_model(_Candidate, item, where)
            name = _member_name(given.name, f"{where}.name")
            if any(c.name == name for c in candidates):
                raise InvalidError(f"{name} is a candidate twice", field=f"{where}.name")
            if given.weight <= 0:
                raise InvalidError(f"must be > 0, got {given.weight}", field=f"{where}.weight")
            candidates.append(ExperimentCandidate(name=name, weight=given.weight))
        mirror: ExperimentMirror | None = None
        if self.mirror is not None:
            given_mirror: _Mirror = validate_model(_Mirror, self.mirror, "spec.mirror")
            name = _member_name(given_mirror.name, "spec.mirror.name")
            if any(c.name == name for c in candidates):
                raise InvalidError(f"{name} is already a candidate", field="spec.mirror.name")
            if not 0 <= given_mirror.percent <= 100:
                raise InvalidError(
                    f"must be between 0 and 100, got {given_mirror.percent}", field="spec.mirror.percent"
                )
            mirror = ExperimentMirror(name=name, percent=given_mirror.percent)
        if not candidates and mirror is None:
            raise InvalidError(
                "an experiment needs at least one candidate or a mirror", field="spec.candidates"
            )
        default = (self.default or "").strip()
        if default and all(c.name != default for c in candidates):
            names = ", ".join(c.name for c in candidates) or "none"
            raise InvalidError(
                f"must be one of the candidates ({names}), got {default!r}", field="spec.default"
            )
        return ExperimentSpec(
            candidates=tuple(candidates), default=default, mirror=mirror, resource_type=resource_type
        )


class NativeExperimentSpec(_ExperimentSpecBase, Strict):
    pass


class SeldonExperimentSpec(_ExperimentSpecBase, Lenient):
    pass


def parse_manifest(doc: Any) -> Resource:
    """Validate one manifest and return the domain resource it describes."""
    if not isinstance(doc, Mapping):
        raise InvalidError(f"a manifest must be a mapping, got {type(doc).__name__}", field="(document)")
    api = doc.get("apiVersion")
    kind = doc.get("kind")
    if not api:
        raise InvalidError("is required", field="apiVersion")
    if not kind:
        raise InvalidError("is required", field="kind")
    if api not in SUPPORTED_APIS:
        raise InvalidError(
            f"unknown apiVersion {api!r}; supported: {', '.join(SUPPORTED_APIS)}", field="apiVersion"
        )
    if kind not in _API_KINDS[api]:
        supported = ", ".join(_API_KINDS[api])
        raise InvalidError(f"unknown kind {kind!r} for {api}; supported: {supported}", field="kind")
    meta_in: _Metadata = validate_model(_Metadata, doc.get("metadata"), "metadata")
    namespace = "" if kind in CLUSTER_WIDE else check_namespace(meta_in.namespace)
    if namespace and not is_default(namespace):
        # Service-wide names for this namespace's resource and what it refers to (namespacing.py).
        doc = into_namespace(doc, namespace)
        meta_in = validate_model(_Metadata, doc.get("metadata"), "metadata")
    imported = "" if api == NATIVE_API else f"{api}/{kind}"
    meta = Meta(
        name=meta_in.name,
        labels=meta_in.labels,
        annotations=meta_in.annotations,
        imported_from=imported,
        namespace="" if is_default(namespace) else namespace,
    )
    native = api == NATIVE_API
    spec = doc.get("spec")
    if kind == "Model":
        mspec = validate_model(NativeModelSpec if native else SeldonModelSpec, spec, "spec")
        return Model(meta=meta, spec=mspec.to_domain())
    if kind == "Server":
        if native:
            nspec: NativeServerSpec = validate_model(NativeServerSpec, spec, "spec")
            return Server(
                meta=meta, spec=nspec.to_domain(parse_bytes(nspec.memory, "spec.memory"), nspec.env)
            )
        sspec: SeldonServerSpec = validate_model(SeldonServerSpec, spec, "spec")
        return Server(meta=meta, spec=sspec.to_domain())
    if kind == "Experiment":
        espec = validate_model(NativeExperimentSpec if native else SeldonExperimentSpec, spec, "spec")
        return Experiment(meta=meta, spec=espec.to_domain())
    if kind == "Pipeline":
        pspec = validate_model(NativePipelineSpec if native else SeldonPipelineSpec, spec, "spec")
        return Pipeline(meta=meta, spec=pspec.to_domain(meta.name, native))
    if kind == "InferenceGraph":
        gspec = validate_model(NativeInferenceGraphSpec if native else KServeInferenceGraphSpec, spec, "spec")
        return InferenceGraph(meta=meta, spec=gspec.to_domain(meta.name, native))
    cspec = validate_model(NativeServerConfigSpec if native else SeldonServerConfigSpec, spec, "spec")
    return ServerConfig(meta=meta, spec=cspec.to_domain())


def _timeout(seconds: float | None) -> float:
    if seconds is None:
        return 0.0
    if seconds <= 0:
        raise InvalidError(f"must be > 0 seconds, got {seconds:g}", field="spec.timeoutSeconds")
    return float(seconds)


__all__ = ["NATIVE_API", "SUPPORTED_APIS", "parse_manifest", "to_manifest"]
