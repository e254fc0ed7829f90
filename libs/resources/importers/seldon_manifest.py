"""A Seldon Core v1 SeldonDeployment as written -> checked frozen dataclasses.

One schema for ``machinelearning.seldon.io`` v1, v1alpha2 and v1alpha3 (v1alpha2's ``spec.name``
is accepted and ignored, as Seldon does). Pydantic reads the shape (unknown fields ignored: users
carry fields we do not act on); the checks are Seldon's admission webhook and defaulting
(operator/apis/machinelearning.seldon.io/v1, tag v1.18.2):

- ``protocol`` seldon|tensorflow|kfserving|v2 ("" = seldon), ``transport`` rest|grpc,
  ``serverType`` rpc|kafka; at least one predictor, predictor names unique; a shadow is never
  the only predictor and there is at most one;
- traffic: with more than one non-shadow predictor the non-shadow traffic sums to 100; a
  single non-shadow predictor has 0 or 100; a shadow's traffic is 0..100;
- a graph node with no type, methods or implementation is a MODEL; a prepackaged one
  (implementation not one of the built-ins) is a MODEL whatever its type says, and needs a
  ``modelUri`` (HUGGINGFACE_SERVER excepted: it can load from the Hub); the tensorflow protocol
  is refused for the sklearn, xgboost, mlflow and huggingface servers; a node without an
  implementation runs its own container, which componentSpecs must hold under the node's name;
  UNKNOWN_TYPE needs methods; a logger needs a mode;
- ``seldon.io/no-engine`` is only valid for single-node graphs.

Beyond the webhook (each because a native name or a Seldon deployment name is built from it):
metadata.name, predictor names and node names are DNS-1123 labels, and node names are unique
within a predictor's graph. Parameters are checked the way Seldon's wrappers read them
(INT, FLOAT, DOUBLE, STRING, BOOL; the value must parse as its type).

Every error is an ``InvalidError`` naming the field by its path from the document root
(``spec.predictors[1].graph.children[0].modelUri``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from pydantic import Field

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.bounds import Int32
from modelplane.libs.resources.importers.seldon_types import (
    BUILT_IN,
    GRPC_TIMEOUT_ANNOTATION,
    HUGGINGFACE_SERVER,
    METHODS,
    NO_ENGINE_ANNOTATION,
    NO_TENSORFLOW_PROTOCOL,
    PARAMETER_TYPES,
    PROTOCOLS,
    REST_TIMEOUT_ANNOTATION,
    SERVER_TYPES,
    TRANSPORTS,
    UNIT_TYPES,
    UNKNOWN_IMPLEMENTATION,
    Component,
    Deployment,
    Parameter,
    Predictor,
    Scaling,
    Unit,
)
from modelplane.libs.resources.manifest_base import Lenient, validate_model
from modelplane.libs.resources.quantity import parse_bytes
from modelplane.libs.resources.types import NAME_MAX_LENGTH, NAME_PATTERN

# What Seldon's python wrapper accepts for a BOOL parameter (distutils' strtobool).
_BOOL_WORDS: Final = frozenset({"y", "yes", "t", "true", "on", "1", "n", "no", "f", "false", "off", "0"})


class _Metadata(Lenient):
    name: str


class _Spec(Lenient):
    predictors: list[Any]
    protocol: str | None = None
    transport: str | None = None
    serverType: str | None = None
    replicas: Int32 | None = None
    annotations: dict[str, str] = Field(default_factory=dict)


class _Predictor(Lenient):
    name: str
    graph: Any
    componentSpecs: list[Any] | None = None
    replicas: Int32 | None = None
    traffic: Int32 = 0
    shadow: bool = False
    explainer: dict[str, Any] | None = None
    annotations: dict[str, str] = Field(default_factory=dict)


class _Logger(Lenient):
    url: str | None = None
    mode: str | None = None


class _Unit(Lenient):
    name: str
    type: str | None = None
    implementation: str | None = None
    methods: list[str] | None = None
    children: list[Any] = Field(default_factory=list)
    parameters: list[Any] = Field(default_factory=list)
    modelUri: str | None = None
    envSecretRefName: str | None = None
    logger: _Logger | None = None


class _Parameter(Lenient):
    name: str
    value: str | int | float | bool
    type: str | None = None


class _Hpa(Lenient):
    minReplicas: Int32 | None = None
    maxReplicas: Int32
    metrics: list[Any] = Field(default_factory=list)


class _Keda(Lenient):
    minReplicaCount: Int32 | None = None
    maxReplicaCount: Int32 | None = None
    triggers: list[Any] = Field(default_factory=list)


class _Component(Lenient):
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: dict[str, Any] = Field(default_factory=dict)
    hpaSpec: Any = None
    kedaSpec: Any = None
    replicas: Int32 | None = None


def parse_deployment(manifest: Mapping[str, Any]) -> Deployment:
    """The checked deployment; ``InvalidError`` naming the field at the first rule it breaks."""
    meta: _Metadata = validate_model(_Metadata, manifest.get("metadata"), "metadata")
    _dns_label(meta.name, "metadata.name", "a SeldonDeployment's name is the model name clients call")
    spec: _Spec = validate_model(_Spec, manifest.get("spec"), "spec")
    protocol = _one_of(spec.protocol or "seldon", PROTOCOLS, "spec.protocol")
    transport = _one_of(spec.transport or "rest", TRANSPORTS, "spec.transport")
    server_type = _one_of(spec.serverType or "rpc", SERVER_TYPES, "spec.serverType")
    if spec.replicas is not None and spec.replicas < 0:
        raise InvalidError(f"must be >= 0, got {spec.replicas}", field="spec.replicas")
    if not spec.predictors:
        raise InvalidError("a SeldonDeployment needs at least one predictor", field="spec.predictors")
    predictors: list[Predictor] = []
    for index, item in enumerate(spec.predictors):
        predictor = _predictor(index, item, protocol)
        for earlier in predictors:
            if earlier.name == predictor.name:
                raise InvalidError(
                    f"predictor name {predictor.name!r} is also used by {earlier.path}",
                    field=f"{predictor.path}.name",
                )
        predictors.append(predictor)
    _check_traffic(predictors)
    return Deployment(
        name=meta.name,
        protocol=protocol,
        transport=transport,
        server_type=server_type,
        replicas=spec.replicas,
        predictors=tuple(predictors),
        timeout_seconds=_timeout(spec.annotations),
    )


def _predictor(index: int, item: Any, protocol: str) -> Predictor:
    path = f"spec.predictors[{index}]"
    given: _Predictor = validate_model(_Predictor, item, path)
    _dns_label(given.name, f"{path}.name", "Seldon builds deployment and native names from it")
    if given.replicas is not None and given.replicas < 0:
        raise InvalidError(f"must be >= 0, got {given.replicas}", field=f"{path}.replicas")
    components = tuple(
        _component(j, raw, f"{path}.componentSpecs[{j}]") for j, raw in enumerate(given.componentSpecs or [])
    )
    containers = {name for component in components for name in component.containers}
    graph = _unit(given.graph, f"{path}.graph", protocol, containers)
    seen: dict[str, str] = {}
    for unit in graph.walk():
        if unit.name in seen:
            raise InvalidError(
                f"graph node name {unit.name!r} is also used at {seen[unit.name]}; node names name "
                "containers and must be unique within a predictor",
                field=f"{unit.path}.name",
            )
        seen[unit.name] = unit.path
    if NO_ENGINE_ANNOTATION in given.annotations and len(seen) > 1:
        raise InvalidError(
            "running without the engine is only valid for single-node graphs",
            field=f"{path}.annotations.{NO_ENGINE_ANNOTATION}",
        )
    return Predictor(
        index=index,
        name=given.name,
        graph=graph,
        components=components,
        replicas=given.replicas,
        traffic=given.traffic,
        shadow=given.shadow,
        has_explainer=bool(given.explainer),
    )


def _component(index: int, raw: Any, path: str) -> Component:
    given: _Component = validate_model(_Component, raw, path)
    if given.replicas is not None and given.replicas < 0:
        raise InvalidError(f"must be >= 0, got {given.replicas}", field=f"{path}.replicas")
    names: list[str] = []
    memory: dict[str, int] = {}
    for k, container in enumerate(given.spec.get("containers") or []):
        where = f"{path}.spec.containers[{k}]"
        if not isinstance(container, Mapping) or not isinstance(container.get("name"), str):
            raise InvalidError("a container needs a name", field=f"{where}.name")
        name = container["name"]
        names.append(name)
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            value = (resources.get(section) or {}).get("memory") if isinstance(resources, Mapping) else None
            if value not in (None, ""):
                memory.setdefault(name, parse_bytes(value, f"{where}.resources.{section}.memory"))
    scaling: Scaling | None = None
    if given.hpaSpec is not None:
        hpa: _Hpa = validate_model(_Hpa, given.hpaSpec, f"{path}.hpaSpec")
        scaling = _scaling(
            f"{path}.hpaSpec", "hpaSpec", hpa.minReplicas, hpa.maxReplicas, _hpa_metrics(hpa.metrics)
        )
    elif given.kedaSpec is not None:
        keda: _Keda = validate_model(_Keda, given.kedaSpec, f"{path}.kedaSpec")
        triggers = tuple(str(t.get("type", "?")) for t in keda.triggers if isinstance(t, Mapping))
        # KEDA's own defaults: minReplicaCount 0, maxReplicaCount 100.
        scaling = _scaling(
            f"{path}.kedaSpec",
            "kedaSpec",
            0 if keda.minReplicaCount is None else keda.minReplicaCount,
            100 if keda.maxReplicaCount is None else keda.maxReplicaCount,
            triggers,
        )
    pod_name = given.metadata.get("name") if isinstance(given.metadata.get("name"), str) else ""
    return Component(index, str(pod_name or ""), tuple(names), memory, given.replicas, scaling)


def _scaling(path: str, source: str, minimum: int | None, maximum: int, metrics: tuple[str, ...]) -> Scaling:
    # An HPA's minReplicas defaults to 1 (Kubernetes).
    low = 1 if minimum is None else minimum
    if low < 0:
        raise InvalidError(f"must be >= 0, got {low}", field=f"{path}.minReplicas")
    if maximum < 1 or maximum < low:
        raise InvalidError(
            f"must be >= 1 and >= the minimum ({low}), got {maximum}",
            field=f"{path}.{'maxReplicas' if source == 'hpaSpec' else 'maxReplicaCount'}",
        )
    return Scaling(path, source, low, maximum, metrics)


def _hpa_metrics(metrics: list[Any]) -> tuple[str, ...]:
    """What each HPA metric follows, in words (``cpu``, ``memory``, ``Pods:requests``, ...);
    none given means the HPA default, cpu."""
    if not metrics:
        return ("cpu",)
    out: list[str] = []
    for metric in metrics:
        if not isinstance(metric, Mapping):
            continue
        kind = str(metric.get("type", ""))
        detail = metric.get(kind[:1].lower() + kind[1:]) if kind else None
        name = detail.get("name") if isinstance(detail, Mapping) else None
        if isinstance(detail, Mapping) and isinstance(detail.get("metric"), Mapping):
            name = detail["metric"].get("name")
        out.append(str(name) if kind == "Resource" and name else f"{kind}:{name or '?'}")
    return tuple(out)


def _unit(raw: Any, path: str, protocol: str, containers: set[str]) -> Unit:
    given: _Unit = validate_model(_Unit, raw, path)
    _dns_label(given.name, f"{path}.name", "a node's name names its container and its native model")
    unit_type = _one_of(given.type, UNIT_TYPES, f"{path}.type") if given.type else ""
    methods = tuple(given.methods or ())
    for j, method in enumerate(methods):
        _one_of(method, METHODS, f"{path}.methods[{j}]")
    implementation = (given.implementation or "").strip()
    # Seldon's defaulting (addDefaultsToGraph).
    if not unit_type and given.methods is None and not implementation:
        unit_type = "MODEL"
    implementation = implementation or UNKNOWN_IMPLEMENTATION
    prepackaged = implementation not in BUILT_IN
    if prepackaged:
        unit_type = "MODEL"
    model_uri = (given.modelUri or "").strip()
    if implementation == UNKNOWN_IMPLEMENTATION:
        if given.name not in containers:
            raise InvalidError(
                f"no container named {given.name!r} in the predictor's componentSpecs: a node without "
                "an implementation runs its own container, named like the node",
                field=f"{path}.name",
            )
        if unit_type == "UNKNOWN_TYPE" and not methods:
            raise InvalidError(
                "an UNKNOWN_TYPE node needs methods (or a known type)", field=f"{path}.methods"
            )
    elif prepackaged:
        if not model_uri and implementation != HUGGINGFACE_SERVER:
            raise InvalidError(
                f"{implementation} needs a modelUri (only HUGGINGFACE_SERVER can load without one)",
                field=f"{path}.modelUri",
            )
        if protocol == "tensorflow" and implementation in NO_TENSORFLOW_PROTOCOL:
            raise InvalidError(
                f"{implementation} does not handle the tensorflow protocol (spec.protocol); use "
                "seldon, v2 or kfserving",
                field=f"{path}.implementation",
            )
    if given.logger is not None and not (given.logger.mode or "").strip():
        raise InvalidError("a logger needs a mode (all, request or response)", field=f"{path}.logger.mode")
    parameters = tuple(
        _parameter(raw_param, f"{path}.parameters[{j}]") for j, raw_param in enumerate(given.parameters)
    )
    children = tuple(
        _unit(child, f"{path}.children[{j}]", protocol, containers) for j, child in enumerate(given.children)
    )
    return Unit(
        path=path,
        name=given.name,
        type=unit_type,
        implementation=implementation,
        methods=methods,
        children=children,
        parameters=parameters,
        model_uri=model_uri,
        secret_name=(given.envSecretRefName or "").strip(),
        logger_mode=(given.logger.mode or "") if given.logger is not None else "",
    )


def _parameter(raw: Any, path: str) -> Parameter:
    given: _Parameter = validate_model(_Parameter, raw, path)
    # Seldon's CRD has the value as a string; YAML users write numbers and booleans unquoted.
    value = given.value
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    kind = _one_of(given.type or "STRING", PARAMETER_TYPES, f"{path}.type")
    problem = _parameter_problem(text, kind)
    if problem:
        raise InvalidError(f"parameter {given.name!r}: {problem}", field=f"{path}.value")
    return Parameter(name=given.name, value=text, type=kind)


def _parameter_problem(text: str, kind: str) -> str:
    if kind == "INT":
        try:
            int(text)
        except ValueError:
            return f"{text!r} is not an INT"
    elif kind in ("FLOAT", "DOUBLE"):
        try:
            number = float(text)
        except ValueError:
            return f"{text!r} is not a {kind}"
        if not math.isfinite(number):
            return f"{text!r} is not a finite {kind}"
    elif kind == "BOOL" and text.strip().lower() not in _BOOL_WORDS:
        return f"{text!r} is not a BOOL (true/false, yes/no, on/off, 1/0)"
    return ""


def _check_traffic(predictors: list[Predictor]) -> None:
    shadows = [p for p in predictors if p.shadow]
    mains = [p for p in predictors if not p.shadow]
    if not mains:
        raise InvalidError(
            "a shadow cannot be the only predictor: it mirrors another", field=f"{shadows[0].path}.shadow"
        )
    if len(shadows) > 1:
        raise InvalidError(
            f"at most one shadow predictor is allowed (also {shadows[0].path})",
            field=f"{shadows[1].path}.shadow",
        )
    for shadow in shadows:
        if not 0 <= shadow.traffic <= 100:
            raise InvalidError(
                f"a shadow's traffic is the percent mirrored, 0..100 (0 = all), got {shadow.traffic}",
                field=f"{shadow.path}.traffic",
            )
    for main in mains:
        if main.traffic < 0:
            raise InvalidError(f"must be >= 0, got {main.traffic}", field=f"{main.path}.traffic")
    if len(mains) == 1:
        if mains[0].traffic not in (0, 100):
            raise InvalidError(
                f"a single predictor takes all traffic: 0 or 100, got {mains[0].traffic}",
                field=f"{mains[0].path}.traffic",
            )
        return
    total = sum(p.traffic for p in mains)
    if total != 100:
        shares = ", ".join(f"{p.name}={p.traffic}" for p in mains)
        raise InvalidError(
            f"traffic of the non-shadow predictors must sum to 100, got {total} ({shares})",
            field=f"{mains[0].path}.traffic",
        )


def _timeout(annotations: Mapping[str, str]) -> float:
    for key in (REST_TIMEOUT_ANNOTATION, GRPC_TIMEOUT_ANNOTATION):
        value = annotations.get(key)
        if value is None:
            continue
        try:
            millis = int(str(value).strip())
        except ValueError:
            millis = -1
        if millis <= 0:
            raise InvalidError(
                f"must be a positive number of milliseconds, got {value!r}", field=f"spec.annotations.{key}"
            )
        return millis / 1000
    return 0.0


def _one_of(value: str | None, allowed: tuple[str, ...], field: str) -> str:
    text = (value or "").strip()
    if text not in allowed:
        raise InvalidError(f"must be one of {', '.join(allowed)}, got {value!r}", field=field)
    return text


def _dns_label(value: str, field: str, why: str) -> None:
    if len(value) > NAME_MAX_LENGTH or not NAME_PATTERN.match(value):
        raise InvalidError(
            f"{value!r} is not a DNS-1123 label (lower-case letters, digits and '-', at most "
            f"{NAME_MAX_LENGTH} characters): {why}",
            field=field,
        )
