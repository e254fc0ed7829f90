"""KServe serving runtimes: the built-in ClusterServingRuntimes, user (Cluster)ServingRuntimes read
from their manifests, and runtime selection as KServe's predictor reconciler does it.

Selection (``select_runtime``), from kserve/kserve ``predictor.go reconcileModel`` and
``predictor_model.go GetSupportingRuntimes``:
- an explicit ``runtime``: the namespaced ServingRuntime of that name, else the
  ClusterServingRuntime (built-ins included). Missing -> RuntimeNotRecognized; disabled ->
  RuntimeDisabled; a given protocolVersion it lacks, or a format it does not list (autoSelect or
  not) -> NoSupportingRuntime.
- otherwise auto-select: runtimes that are enabled, single-model, not multi-node, support the
  model's protocol (its protocolVersion, else v1; a runtime listing none supports all) and list
  the format with ``autoSelect`` as ``name`` (no version asked) or ``name:version``. Namespaced
  runtimes come first, then cluster ones; each group is ordered by its lowest protocol (v1 <
  v2 < grpc-v1 < grpc-v2 < none), then name (KServe puts the newest first: we have no creation
  time, so name alone breaks the tie), then stably by the format's priority (higher first,
  unset last). The first wins; none -> NoSupportingRuntime.

A built-in is replaced by a user runtime of the same name (either kind), as re-applying
kserve-sklearnserver in a cluster would replace it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import Field

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.bounds import Int32
from modelplane.libs.resources.importers.base import NOT_SUPPORTED_LOCALLY, Problem
from modelplane.libs.resources.manifest_base import Lenient, validate_model
from modelplane.libs.resources.quantity import parse_bytes

SERVING_RUNTIME: Final = "ServingRuntime"
CLUSTER_SERVING_RUNTIME: Final = "ClusterServingRuntime"

PROTOCOLS: Final = ("v1", "v2", "grpc-v1", "grpc-v2")
# KServe's ProtocolVersion numbers: a runtime's lowest one orders it; none listed ranks last.
_PROTOCOL_RANK: Final = {p: i + 1 for i, p in enumerate(PROTOCOLS)}
_UNKNOWN_RANK: Final = len(PROTOCOLS) + 1
DEFAULT_PROTOCOL: Final = "v1"

# KServe's failure reasons (FailureReason in v1beta1).
RUNTIME_NOT_RECOGNIZED: Final = "RuntimeNotRecognized"
RUNTIME_DISABLED: Final = "RuntimeDisabled"
NO_SUPPORTING_RUNTIME: Final = "NoSupportingRuntime"
SELECTION_REASONS: Final = (RUNTIME_NOT_RECOGNIZED, RUNTIME_DISABLED, NO_SUPPORTING_RUNTIME)


@dataclass(frozen=True, slots=True)
class SupportedFormat:
    name: str
    version: str = ""
    auto_select: bool = False
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class LocalBackend:
    """How a built-in runtime runs here. ``mlserver``: on the native mlserver pool, the Model
    needing only its format. Otherwise ``capability`` is what the Model also requires (no
    native server offers it) and ``missing`` names the binary this machine lacks."""

    mlserver: bool
    capability: str = ""
    missing: str = ""


@dataclass(frozen=True, slots=True)
class Runtime:
    name: str
    kind: str  # SERVING_RUNTIME or CLUSTER_SERVING_RUNTIME
    formats: tuple[SupportedFormat, ...]
    protocols: tuple[str, ...] = ()
    multi_model: bool = False
    disabled: bool = False
    multi_node: bool = False
    # The runtime's containers as written (user runtimes); built-ins need none here.
    containers: tuple[Mapping[str, Any], ...] = ()
    builtin: LocalBackend | None = None

    def supports_protocol(self, protocol: str) -> bool:
        return not self.protocols or protocol in self.protocols

    def supports_format(self, name: str, version: str, explicit: bool) -> bool:
        """KServe's label match: an explicit runtime counts every format, auto-select only
        autoSelect ones; ``name`` matches any version, ``name:version`` that version."""
        labels: set[str] = set()
        for fmt in self.formats:
            if explicit or fmt.auto_select:
                labels.add(fmt.name)
                if fmt.version:
                    labels.add(f"{fmt.name}:{fmt.version}")
        return (f"{name}:{version}" if version else name) in labels

    def priority(self, format_name: str) -> int | None:
        """The priority of the first listed format of that name (KServe's GetPriority)."""
        for fmt in self.formats:
            if fmt.name == format_name:
                return fmt.priority
        return None

    def protocol_rank(self) -> int:
        return min((_PROTOCOL_RANK.get(p, _UNKNOWN_RANK) for p in self.protocols), default=_UNKNOWN_RANK)

    def default_protocol(self) -> str:
        """The protocol a model gets when it names none (the runtime's lowest; else v1)."""
        rank = self.protocol_rank()
        return PROTOCOLS[rank - 1] if rank <= len(PROTOCOLS) else DEFAULT_PROTOCOL

    def ref(self) -> str:
        return f"{self.kind}/{self.name}" + (" (built-in)" if self.builtin is not None else "")


def _f(name: str, version: str, priority: int | None = 1, auto: bool = True) -> SupportedFormat:
    return SupportedFormat(name=name, version=version, auto_select=auto, priority=priority)


_MLSERVER: Final = LocalBackend(mlserver=True)


def _elsewhere(capability: str, missing: str) -> LocalBackend:
    return LocalBackend(mlserver=False, capability=capability, missing=missing)


def _builtin(
    name: str, formats: Iterable[SupportedFormat], protocols: Iterable[str], backend: LocalBackend
) -> Runtime:
    return Runtime(
        name=name,
        kind=CLUSTER_SERVING_RUNTIME,
        formats=tuple(formats),
        protocols=tuple(protocols),
        builtin=backend,
    )


# KServe's default ClusterServingRuntimes (config/runtimes/*.yaml): formats, versions,
# priorities and protocols as shipped. The sklearn/xgboost/lightgbm servers and kserve-mlserver
# run on MLServer here (the same V1/V2 endpoints through our gateway).
BUILTIN_RUNTIMES: Final[tuple[Runtime, ...]] = (
    _builtin("kserve-sklearnserver", [_f("sklearn", "1")], ["v1", "v2"], _MLSERVER),
    _builtin("kserve-xgbserver", [_f("xgboost", "2")], ["v1", "v2"], _MLSERVER),
    _builtin("kserve-lgbserver", [_f("lightgbm", "4")], ["v1", "v2"], _MLSERVER),
    _builtin(
        "kserve-mlserver",
        [
            _f("sklearn", "0", 2),
            _f("sklearn", "1", 2),
            _f("xgboost", "1", 2),
            _f("xgboost", "2", 2),
            _f("lightgbm", "3", 2),
            _f("lightgbm", "4", 2),
            _f("mlflow", "1", 1),
            _f("mlflow", "2", 1),
        ],
        ["v2"],
        _MLSERVER,
    ),
    _builtin(
        "kserve-tritonserver",
        [
            _f("tensorrt", "8"),
            _f("tensorflow", "1"),
            _f("tensorflow", "2"),
            _f("onnx", "1"),
            _f("pytorch", "1", None, auto=False),
            _f("triton", "2"),
        ],
        ["v2", "grpc-v2"],
        _elsewhere("triton", "tritonserver"),
    ),
    _builtin(
        "kserve-huggingfaceserver",
        [_f("huggingface", "1")],
        ["v2", "v1"],
        _elsewhere("huggingfaceserver", "KServe's huggingfaceserver"),
    ),
    _builtin(
        "kserve-torchserve",
        [_f("pytorch", "1", 2)],
        ["v1", "v2", "grpc-v2"],
        _elsewhere("torchserve", "torchserve"),
    ),
    _builtin(
        "kserve-tensorflow-serving",
        [_f("tensorflow", "1", 2), _f("tensorflow", "2", 2)],
        ["v1", "grpc-v1"],
        _elsewhere("tensorflow-serving", "tensorflow_model_server"),
    ),
    _builtin(
        "kserve-paddleserver",
        [_f("paddle", "2")],
        ["v1", "v2"],
        _elsewhere("paddleserver", "KServe's paddleserver"),
    ),
    _builtin(
        "kserve-pmmlserver",
        [_f("pmml", "3"), _f("pmml", "4")],
        ["v1", "v2"],
        _elsewhere("pmmlserver", "KServe's pmmlserver"),
    ),
    _builtin(
        "kserve-vllmserver",
        [_f("vLLM", "1")],
        [],
        _elsewhere("vllm", "vLLM (vllm.entrypoints.openai.api_server)"),
    ),
)


# ---- user runtimes: the manifest's shape (pydantic at this edge only) ------------------------


class _Format(Lenient):
    name: str
    version: str | None = None
    autoSelect: bool | None = None
    priority: Int32 | None = None


class _Container(Lenient):
    name: str
    image: str | None = None


class RuntimeSpecModel(Lenient):
    supportedModelFormats: list[_Format] = Field(default_factory=list)
    multiModel: bool | None = None
    disabled: bool | None = None
    protocolVersions: list[str] = Field(default_factory=list)
    containers: list[dict[str, Any]]
    workerSpec: dict[str, Any] | None = None


def runtime_from_manifest(manifest: Mapping[str, Any], kind: str) -> Runtime:
    """A user runtime, checked as KServe's CRD schema checks it; InvalidError naming the field."""
    name = str((manifest.get("metadata") or {}).get("name") or "")
    if not name:
        raise InvalidError("is required", field="metadata.name")
    spec: RuntimeSpecModel = validate_model(RuntimeSpecModel, manifest.get("spec"), "spec")
    if not spec.containers:
        raise InvalidError("a runtime needs at least one container", field="spec.containers")
    for index, container in enumerate(spec.containers):
        validate_model(_Container, container, f"spec.containers[{index}]")
        container_memory(container, f"spec.containers[{index}]")
    formats: list[SupportedFormat] = []
    for index, fmt in enumerate(spec.supportedModelFormats):
        if fmt.priority is not None and fmt.priority < 1:
            raise InvalidError(
                f"must be >= 1, got {fmt.priority}", field=f"spec.supportedModelFormats[{index}].priority"
            )
        if not fmt.name.strip():
            raise InvalidError("must not be empty", field=f"spec.supportedModelFormats[{index}].name")
        formats.append(
            SupportedFormat(
                name=fmt.name.strip(),
                version=(fmt.version or "").strip(),
                auto_select=bool(fmt.autoSelect),
                priority=fmt.priority,
            )
        )
    for index, protocol in enumerate(spec.protocolVersions):
        if protocol not in PROTOCOLS:
            raise InvalidError(
                f"must be one of {', '.join(PROTOCOLS)}, got {protocol!r}",
                field=f"spec.protocolVersions[{index}]",
            )
    return Runtime(
        name=name,
        kind=kind,
        formats=tuple(formats),
        protocols=tuple(spec.protocolVersions),
        multi_model=bool(spec.multiModel),
        disabled=bool(spec.disabled),
        multi_node=spec.workerSpec is not None,
        containers=tuple(spec.containers),
    )


def container_memory(container: Mapping[str, Any], field: str) -> int:
    """A container's memory limit (else its request) in bytes; 0 when it names none."""
    resources = container.get("resources") or {}
    if not isinstance(resources, Mapping):
        raise InvalidError("must be a mapping", field=f"{field}.resources")
    for section in ("limits", "requests"):
        values = resources.get(section) or {}
        if not isinstance(values, Mapping):
            raise InvalidError("must be a mapping", field=f"{field}.resources.{section}")
        if values.get("memory") is not None:
            return parse_bytes(values["memory"], f"{field}.resources.{section}.memory")
    return 0


@dataclass(frozen=True, slots=True)
class RuntimeCatalog:
    """The runtimes an InferenceService in one namespace may select."""

    namespaced: tuple[Runtime, ...] = ()
    cluster: tuple[Runtime, ...] = ()

    @staticmethod
    def of(namespaced: Iterable[Runtime], cluster: Iterable[Runtime]) -> RuntimeCatalog:
        namespaced = tuple(namespaced)
        cluster = tuple(cluster)
        user_names = {r.name for r in (*namespaced, *cluster)}
        builtins = tuple(r for r in BUILTIN_RUNTIMES if r.name not in user_names)
        return RuntimeCatalog(namespaced=namespaced, cluster=cluster + builtins)

    def find(self, name: str) -> Runtime | None:
        for runtime in (*self.namespaced, *self.cluster):
            if runtime.name == name:
                return runtime
        return None


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """What the predictor asks of a runtime; the ``*_field`` are where problems point."""

    format_name: str
    format_version: str = ""
    protocol: str = ""  # "" = not given
    runtime: str = ""  # "" = auto-select
    format_field: str = "spec.predictor.model.modelFormat.name"
    runtime_field: str = "spec.predictor.model.runtime"
    protocol_field: str = "spec.predictor.model.protocolVersion"

    def format_label(self) -> str:
        return f"{self.format_name}:{self.format_version}" if self.format_version else self.format_name


@dataclass(frozen=True, slots=True)
class Selection:
    """The chosen runtime and the protocol the model is served with, or why there is none."""

    runtime: Runtime | None
    protocol: str
    note: str
    problem: Problem | None = None


def _failed(reason: str, field: str, message: str, request: ModelRequest) -> Selection:
    return Selection(
        runtime=None,
        protocol=request.protocol or DEFAULT_PROTOCOL,
        note=f"runtime: none ({reason}: {message})",
        problem=Problem(field=field, reason=reason, message=message),
    )


def select_runtime(request: ModelRequest, catalog: RuntimeCatalog) -> Selection:
    if request.runtime:
        return _explicit(request, catalog)
    return _auto(request, catalog)


def _explicit(request: ModelRequest, catalog: RuntimeCatalog) -> Selection:
    runtime = catalog.find(request.runtime)
    if runtime is None:
        return _failed(
            RUNTIME_NOT_RECOGNIZED,
            request.runtime_field,
            f"no ServingRuntime or ClusterServingRuntime named {request.runtime!r} is applied "
            "(waiting for the runtime to become available)",
            request,
        )
    if runtime.disabled:
        return _failed(
            RUNTIME_DISABLED, request.runtime_field, f"runtime {runtime.name} is disabled", request
        )
    if request.protocol and not runtime.supports_protocol(request.protocol):
        return _failed(
            NO_SUPPORTING_RUNTIME,
            request.protocol_field,
            f"runtime {runtime.name} does not support protocol {request.protocol} "
            f"(it supports {', '.join(runtime.protocols)})",
            request,
        )
    if not runtime.supports_format(request.format_name, request.format_version, explicit=True):
        return _failed(
            NO_SUPPORTING_RUNTIME,
            request.format_field,
            f"runtime {runtime.name} does not support model format {request.format_label()}",
            request,
        )
    protocol = request.protocol or runtime.default_protocol()
    return Selection(
        runtime=runtime,
        protocol=protocol,
        note=f"runtime {runtime.name}: named by {request.runtime_field} ({runtime.ref()})",
    )


def _candidates(runtimes: Iterable[Runtime], request: ModelRequest, protocol: str) -> list[Runtime]:
    fitting = [
        r
        for r in runtimes
        if not r.disabled
        and not r.multi_model
        and not r.multi_node
        and r.supports_format(request.format_name, request.format_version, explicit=False)
        and r.supports_protocol(protocol)
    ]
    fitting.sort(key=lambda r: (r.protocol_rank(), r.name))

    # Stable: equal (or unset) priorities keep the protocol/name order.
    def by_priority(runtime: Runtime) -> tuple[int, int]:
        priority = runtime.priority(request.format_name)
        return (1, 0) if priority is None else (0, -priority)

    fitting.sort(key=by_priority)
    return fitting


def _auto(request: ModelRequest, catalog: RuntimeCatalog) -> Selection:
    protocol = request.protocol or DEFAULT_PROTOCOL
    ranked = _candidates(catalog.namespaced, request, protocol) + _candidates(
        catalog.cluster, request, protocol
    )
    if not ranked:
        return _failed(
            NO_SUPPORTING_RUNTIME,
            request.format_field,
            f"no runtime supports model format {request.format_label()} with protocol {protocol} "
            "(enabled, single-model, autoSelect for that format)",
            request,
        )
    chosen = ranked[0]
    why = f"autoSelect {request.format_label()} over protocol {protocol}"
    priority = chosen.priority(request.format_name)
    if len(ranked) > 1:
        runner = ranked[1]
        other = runner.priority(request.format_name)
        why += f", priority {priority if priority is not None else 'unset'} beats {runner.name} ({other if other is not None else 'unset'})"
    return Selection(
        runtime=chosen,
        protocol=request.protocol or chosen.default_protocol(),
        note=f"runtime {chosen.name}: {why} ({chosen.ref()})",
    )


def local_problem(runtime: Runtime, field: str) -> Problem | None:
    """The NotSupportedLocally problem of a built-in that does not run here, else None."""
    backend = runtime.builtin
    if backend is None or backend.mlserver:
        return None
    return Problem(
        field=field,
        reason=NOT_SUPPORTED_LOCALLY,
        message=(
            f"{runtime.name} runs {backend.missing}, which is not installed here: the model is "
            f"created requiring {backend.capability!r} and waits for a server that offers it"
        ),
    )
