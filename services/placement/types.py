"""The agent's own types: commands, outcomes and the replica's profile (no protobuf here)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from modelplane.libs.resources.types import ModelSpec


def server_model_name(model: str, version: int) -> str:
    """The name a model version has on the model server ("<model>_<version>")."""
    return f"{model}_{version}"


@dataclass(frozen=True, slots=True)
class ReplicaId:
    server: str
    index: int
    # Fresh on every agent start so a restarted replica is told apart from the one before.
    incarnation: str


@dataclass(frozen=True, slots=True)
class LoadRequest:
    model: str
    version: int
    spec: ModelSpec

    @property
    def server_name(self) -> str:
        return server_model_name(self.model, self.version)


@dataclass(frozen=True, slots=True)
class UnloadRequest:
    model: str
    version: int

    @property
    def server_name(self) -> str:
        return server_model_name(self.model, self.version)


@dataclass(frozen=True, slots=True)
class Decision:
    """The immediate answer to a command; the outcome follows as reports."""

    accepted: bool
    reason: str = ""


class Outcome(enum.Enum):
    LOADING = "loading"
    LOADED = "loaded"
    LOAD_FAILED = "load_failed"
    UNLOADED = "unloaded"
    UNLOAD_FAILED = "unload_failed"


@dataclass(frozen=True, slots=True)
class Report:
    model: str
    version: int
    outcome: Outcome
    message: str = ""


@dataclass(frozen=True, slots=True)
class ReplicaProfile:
    """What this replica offers, resolved from its Server and ServerConfig."""

    server_config: str
    runtime: str
    capabilities: tuple[str, ...]
    memory_bytes: int
    overcommit_percent: int
    parallel_workers: int
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
