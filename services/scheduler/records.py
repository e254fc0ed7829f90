"""The scheduler's record of one model: its versions and where each version's replicas are.

These mirror ``state_pb2.ModelPlacement`` (persisted in KV_PLACEMENTS by converters.py) with one
in-memory addition: ``command_sent`` tells whether the pending load/unload was already delivered
to the agent, so an event that re-runs reconciliation does not send it twice. After a restart it
is False, so pending commands are delivered again (agents treat repeats as no-ops).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelplane.libs import states
from modelplane.libs.resources.types import ModelSpec


@dataclass(slots=True)
class Assignment:
    server: str
    index: int
    state: int
    reason: str = ""
    updated_at: str = ""
    command_sent: bool = False

    @property
    def replica_key(self) -> str:
        return f"{self.server}.{self.index}"


@dataclass(slots=True)
class VersionRecord:
    version: int
    spec: ModelSpec
    server: str = ""
    replicas: list[Assignment] = field(default_factory=list)
    reason: str = ""
    schedule_failed: bool = False
    # In memory only: replica key -> load failures of this version there, so a retry tries
    # other suitable replicas first.
    failures: dict[str, int] = field(default_factory=dict)
    # In memory only: desired replicas the last placement could not get (partial scheduling).
    missing: int = 0

    def assignment(self, server: str, index: int) -> Assignment | None:
        for a in self.replicas:
            if a.server == server and a.index == index:
                return a
        return None

    def live(self) -> list[Assignment]:
        """Assignments that hold (or are getting) the model: not inactive, not on the way out."""
        return [
            a
            for a in self.replicas
            if a.state not in states.INACTIVE and a.state not in states.UNLOADING_STATES
        ]

    def states(self) -> list[int]:
        return [a.state for a in self.replicas]


@dataclass(slots=True)
class ModelRecord:
    name: str
    generation: int = 0
    deleted: bool = False
    versions: list[VersionRecord] = field(default_factory=list)

    @property
    def latest(self) -> VersionRecord | None:
        return self.versions[-1] if self.versions else None

    def version(self, number: int) -> VersionRecord | None:
        for v in self.versions:
            if v.version == number:
                return v
        return None


def server_model_name(model: str, version: int) -> str:
    """The name a model server knows a model version by."""
    return f"{model}_{version}"


def required_bytes(spec: ModelSpec, server_parallel_workers: int = 0) -> int:
    """Memory one copy of the model takes on a replica: memory x parallel workers (x1 if unknown)."""
    return spec.required_bytes(server_parallel_workers)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """An agent's immediate answer to a load/unload command."""

    accepted: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AgentReport:
    """A placement agent's report about one model version on one replica."""

    server: str
    index: int
    incarnation: str
    model: str
    version: int
    # loading | loaded | load_failed | unloaded | unload_failed | unknown
    outcome: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The scaling bounds of a Server resource (0 max = unbounded)."""

    min_replicas: int = 0
    max_replicas: int = 0


@dataclass(frozen=True, slots=True)
class ReplicaUsage:
    """Memory booked on one replica: reserved while loading, loaded once there."""

    index: int
    memory_bytes: int
    overcommit_percent: int
    reserved_bytes: int
    loaded_bytes: int
    available_bytes: int
    models: tuple[str, ...] = ()
    draining: bool = False


@dataclass(frozen=True, slots=True)
class ServerUsage:
    """Booked memory of every live replica of one server (published as ServerState)."""

    server: str
    replicas: tuple[ReplicaUsage, ...] = ()


@dataclass(frozen=True, slots=True)
class ScaleRequest:
    """A pending request to change a Server's replica count (published as ServerScaleRequest)."""

    server: str
    current_replicas: int
    target_replicas: int
    # "up" | "down"
    direction: str
    reason: str
    requested_at: str = ""

    def same_request(self, other: ScaleRequest | None) -> bool:
        """Equal but for the time it was made (so re-deciding it does not re-publish it)."""
        return other is not None and (
            self.server,
            self.current_replicas,
            self.target_replicas,
            self.direction,
            self.reason,
        ) == (other.server, other.current_replicas, other.target_replicas, other.direction, other.reason)
