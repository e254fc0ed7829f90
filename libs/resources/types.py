"""Domain types of the desired state. Frozen dataclasses: handlers and policies use these, never
protobuf or pydantic objects (those stay at the edges: convert.py and manifests.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

NAME_PATTERN: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NAME_MAX_LENGTH: Final = 63

Kind = Literal["Model", "Server", "ServerConfig", "Experiment"]
KINDS: Final[tuple[Kind, ...]] = ("Model", "Server", "ServerConfig", "Experiment")

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


Resource = Model | Server | ServerConfig | Experiment


def effective_capabilities(server: ServerSpec, config: ServerConfigSpec) -> tuple[str, ...]:
    """Server.capabilities replaces the ServerConfig's; extraCapabilities adds (Seldon rules)."""
    base = server.capabilities or config.capabilities
    merged: list[str] = []
    for cap in (*base, *server.extra_capabilities):
        cap = cap.strip()
        if cap and cap not in merged:
            merged.append(cap)
    return tuple(merged)
