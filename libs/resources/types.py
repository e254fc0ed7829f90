"""Domain types of the desired state. Frozen dataclasses: handlers and policies use these, never
protobuf or pydantic objects (those stay at the edges: convert.py and manifests.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

NAME_PATTERN: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NAME_MAX_LENGTH: Final = 63

Kind = Literal["Model", "Server", "ServerConfig", "Experiment", "Pipeline", "InferenceGraph"]
KINDS: Final[tuple[Kind, ...]] = (
    "Model",
    "Server",
    "ServerConfig",
    "Experiment",
    "Pipeline",
    "InferenceGraph",
)

RUNTIMES: Final = ("mlserver", "triton", "custom")

# What an Experiment's candidates are (Seldon's resourceType); the first is the default.
EXPERIMENT_RESOURCE_TYPES: Final = ("model", "pipeline")

# Load-balancing strategies a Model may ask the gateway for (KubeAI's names); the first is the
# default.
BALANCING_STRATEGIES: Final = ("RoundRobin", "LeastLoad", "PrefixHash")


@dataclass(frozen=True, slots=True)
class Meta:
    name: str
    generation: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    imported_from: str = ""
    # "<Kind>/<namespace>/<name>" of the foreign resource this one is derived from ("" when
    # applied directly).
    owner: str = ""
    # Where it was applied ("" = default). Outside default, ``name`` is the service-wide name
    # ``<namespace>--<name>`` every service uses (libs/resources/namespacing.py).
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class PrefixHashOptions:
    """CHWBL settings (KubeAI's ``loadBalancing.prefixHash``, same defaults)."""

    # A replica is skipped above this percentage of the mean in-flight load (>= 100).
    mean_load_factor_percent: int = 125
    # Ring points per replica: more points, more even spread, larger ring.
    replication: int = 256
    # Prompt characters hashed: requests sharing them meet on one replica.
    prefix_char_length: int = 100


@dataclass(frozen=True, slots=True)
class LoadBalancing:
    """How the gateway spreads a model's requests over its replicas."""

    strategy: str = BALANCING_STRATEGIES[0]
    prefix_hash: PrefixHashOptions = field(default_factory=PrefixHashOptions)


# What a model's autoscaling follows: requests in flight (held ones included; KubeAI's metric and
# KServe's ``concurrency``) or requests per second (KServe's ``rps``); the first is the default.
AUTOSCALING_METRICS: Final = ("concurrency", "rps")


@dataclass(frozen=True, slots=True)
class Autoscaling:
    """Native model autoscaling (KubeAI's fields): replicas = ceil(average metric / target),
    within [minReplicas, maxReplicas], decreased only after ``scale_down_delay_seconds``."""

    # Metric per replica (KubeAI targetRequests, default 100; KServe scaleTarget).
    target_requests: float = 100.0
    scale_down_delay_seconds: float = 30.0
    metric: str = AUTOSCALING_METRICS[0]
    # Present but disabled: replicas are left alone (KubeAI autoscalingDisabled).
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class ModelSpec:
    storage_uri: str
    artifact_version: str = ""
    requirements: tuple[str, ...] = ()
    memory_bytes: int = 0
    replicas: int = 1
    min_replicas: int = 0
    # 0 = unbounded
    max_replicas: int = 0
    server: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    secret_name: str = ""
    explainer_for: str = ""
    parallel_workers: int = 0
    # Routing only: changing it does not make a new version.
    load_balancing: LoadBalancing = field(default_factory=LoadBalancing)
    # Seconds the gateway waits for one inference answer; 0 = the gateway's default. Routing only.
    timeout_seconds: float = 0.0
    # None: replicas are what the spec says (no autoscaling). Scaling only: no new version.
    autoscaling: Autoscaling | None = None

    def required_bytes(self, server_parallel_workers: int = 0) -> int:
        """Memory one copy takes on a replica: memory x parallel workers (the model's, else the
        server's; x1 if neither is known). The scheduler books it, the agent keeps it resident."""
        return self.memory_bytes * max(1, self.parallel_workers or server_parallel_workers)

    def same_version_as(self, other: ModelSpec) -> bool:
        """True when ``other`` differs only in scaling fields (no new version needed)."""
        return _version_fields(self) == _version_fields(other)


def _version_fields(spec: ModelSpec) -> tuple[object, ...]:
    return (
        spec.storage_uri,
        spec.artifact_version,
        spec.requirements,
        spec.memory_bytes,
        spec.server,
        tuple(sorted(spec.parameters.items())),
        spec.secret_name,
        spec.explainer_for,
        spec.parallel_workers,
    )


@dataclass(frozen=True, slots=True)
class Model:
    meta: Meta
    spec: ModelSpec
    kind: Literal["Model"] = "Model"


@dataclass(frozen=True, slots=True)
class ServerConfigSpec:
    runtime: str = "mlserver"
    capabilities: tuple[str, ...] = ()
    memory_bytes: int = 0
    overcommit_percent: int = 0
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    parallel_workers: int = 0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    meta: Meta
    spec: ServerConfigSpec
    kind: Literal["ServerConfig"] = "ServerConfig"


@dataclass(frozen=True, slots=True)
class ServerSpec:
    server_config: str
    capabilities: tuple[str, ...] = ()
    extra_capabilities: tuple[str, ...] = ()
    replicas: int = 1
    min_replicas: int = 0
    max_replicas: int = 0
    disable_auto_update: bool = False
    memory_bytes: int = 0
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Server:
    meta: Meta
    spec: ServerSpec
    kind: Literal["Server"] = "Server"


@dataclass(frozen=True, slots=True)
class ExperimentCandidate:
    """A model (or pipeline) taking ``weight`` parts of the experiment's traffic."""

    name: str
    weight: int


@dataclass(frozen=True, slots=True)
class ExperimentMirror:
    """A model (or pipeline) receiving a copy of ``percent``% of the traffic (answers ignored)."""

    name: str
    percent: int


@dataclass(frozen=True, slots=True)
class ExperimentSpec:
    """Seldon v2's Experiment: traffic split by weight over candidates, optionally mirrored.

    With ``default`` set (one of the candidates: the baseline), requests for that model are
    split; the experiment is also reachable as ``<name>.experiment``."""

    candidates: tuple[ExperimentCandidate, ...] = ()
    default: str = ""
    mirror: ExperimentMirror | None = None
    resource_type: str = EXPERIMENT_RESOURCE_TYPES[0]

    def members(self) -> tuple[str, ...]:
        """Every resource the experiment sends traffic to: the candidates, then the mirror."""
        names = tuple(c.name for c in self.candidates)
        return names + ((self.mirror.name,) if self.mirror is not None else ())


@dataclass(frozen=True, slots=True)
class Experiment:
    meta: Meta
    spec: ExperimentSpec
    kind: Literal["Experiment"] = "Experiment"


# How a pipeline step (or the pipeline's input or output) combines what it waits for (Seldon's
# inputsJoinType / triggersJoinType / stepsJoin); the first is the default.
# inner: every reference must arrive (within the join window); outer: whatever arrived within the
# window; any: the first arrival.
JOIN_TYPES: Final = ("inner", "outer", "any")
# Seldon leaves the window "some nonzero default": ours is long enough for a slow model upstream.
DEFAULT_JOIN_WINDOW_MS: Final = 10_000


@dataclass(frozen=True, slots=True)
class PipelineBatch:
    """Micro-batching of a step: up to ``size`` requests (or what arrived within ``window_ms``)
    go to the model as one call, their tensors concatenated along the first dimension."""

    size: int = 0
    window_ms: int = 0


@dataclass(frozen=True, slots=True)
class PipelineStep:
    """One step: a call of the model named ``name`` (Seldon: the step name is the model name).

    ``inputs`` and ``triggers`` are references (``libs.resources.pipeline_refs``); no inputs
    means the pipeline's own inputs. ``tensor_map`` renames incoming tensors: full reference of
    a tensor (``step.outputs.OUTPUT0``) -> the name the model receives."""

    name: str
    inputs: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    tensor_map: dict[str, str] = field(default_factory=dict)
    inputs_join_type: str = JOIN_TYPES[0]
    triggers_join_type: str = JOIN_TYPES[0]
    # 0 = DEFAULT_JOIN_WINDOW_MS
    join_window_ms: int = 0
    batch: PipelineBatch | None = None


@dataclass(frozen=True, slots=True)
class PipelineInput:
    """Where the pipeline's input comes from when it is chained from other pipelines
    (``other.outputs[.T]``, ``other.inputs[.T]``, ``other.step.s.outputs[.T]``, ...)."""

    external_inputs: tuple[str, ...] = ()
    external_triggers: tuple[str, ...] = ()
    join_type: str = JOIN_TYPES[0]
    triggers_join_type: str = JOIN_TYPES[0]
    join_window_ms: int = 0
    tensor_map: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PipelineOutput:
    """What the pipeline answers: the joined outputs of ``steps`` (references); none = the
    outputs of the last step."""

    steps: tuple[str, ...] = ()
    steps_join: str = JOIN_TYPES[0]
    join_window_ms: int = 0
    tensor_map: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PipelineSpec:
    """Seldon v2's Pipeline: a dataflow of model steps joined by tensor references."""

    steps: tuple[PipelineStep, ...]
    input: PipelineInput | None = None
    output: PipelineOutput | None = None
    allow_cycles: bool = False
    # With allow_cycles: how often one request may run a step again (0 = once, no revisit).
    max_step_revisits: int = 0

    def models(self) -> tuple[str, ...]:
        """The models the pipeline calls, in step order, each once."""
        return tuple(dict.fromkeys(step.name for step in self.steps))


@dataclass(frozen=True, slots=True)
class Pipeline:
    meta: Meta
    spec: PipelineSpec
    kind: Literal["Pipeline"] = "Pipeline"


# KServe InferenceGraph router types and step dependencies; the first dependency is the default.
GRAPH_ROUTER_TYPES: Final = ("Sequence", "Splitter", "Ensemble", "Switch")
GRAPH_DEPENDENCIES: Final = ("Soft", "Hard")
# The name every InferenceGraph must give its entry node.
GRAPH_ROOT_NODE: Final = "root"


@dataclass(frozen=True, slots=True)
class GraphStep:
    """One step of a KServe InferenceGraph node: exactly one of ``service_name`` (a model),
    ``service_url`` or ``node_name`` (another node of the graph) is set.

    ``data`` is ``$request`` (the node's input; the default) or ``$response`` (the previous
    step's answer, Sequence only); ``condition`` is a GJSON-style path; ``weight`` is Splitter
    only (the weights of a node sum to 100)."""

    name: str = ""
    service_name: str = ""
    service_url: str = ""
    node_name: str = ""
    data: str = ""
    condition: str = ""
    weight: int = 0
    dependency: str = GRAPH_DEPENDENCIES[0]

    def target(self) -> str:
        return self.service_name or self.service_url or self.node_name


@dataclass(frozen=True, slots=True)
class GraphNode:
    router_type: str
    steps: tuple[GraphStep, ...] = ()


@dataclass(frozen=True, slots=True)
class InferenceGraphSpec:
    """KServe's InferenceGraph (serving.kserve.io/v1alpha1): nodes by name, ``root`` first."""

    nodes: dict[str, GraphNode] = field(default_factory=dict)
    # Seconds one graph request may take; 0 = the gateway's default.
    timeout_seconds: float = 0.0

    def models(self) -> tuple[str, ...]:
        """The models (serviceName steps) the graph calls, each once."""
        return tuple(
            dict.fromkeys(
                step.service_name for node in self.nodes.values() for step in node.steps if step.service_name
            )
        )


@dataclass(frozen=True, slots=True)
class InferenceGraph:
    meta: Meta
    spec: InferenceGraphSpec
    kind: Literal["InferenceGraph"] = "InferenceGraph"


Resource = Model | Server | ServerConfig | Experiment | Pipeline | InferenceGraph


def effective_capabilities(server: ServerSpec, config: ServerConfigSpec) -> tuple[str, ...]:
    """Server.capabilities replaces the ServerConfig's; extraCapabilities adds (Seldon rules)."""
    base = server.capabilities or config.capabilities
    merged: list[str] = []
    for cap in (*base, *server.extra_capabilities):
        cap = cap.strip()
        if cap and cap not in merged:
            merged.append(cap)
    return tuple(merged)
