"""The status service's own view of its inputs and output (protobuf stays in converters.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AssignmentView:
    server: str
    index: int
    state: int
    reason: str = ""
    updated_at: str = ""


@dataclass(frozen=True, slots=True)
class VersionView:
    version: int
    replicas: tuple[AssignmentView, ...] = ()
    reason: str = ""
    schedule_failed: bool = False


@dataclass(frozen=True, slots=True)
class PlacementView:
    model: str
    versions: tuple[VersionView, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelView:
    name: str
    generation: int
    replicas: int
    min_replicas: int


@dataclass(frozen=True, slots=True)
class ServerView:
    name: str
    generation: int
    replicas: int


@dataclass(frozen=True, slots=True)
class ReplicaView:
    server: str
    index: int
    unavailable_reason: str = ""
    registered_at: str = ""


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    server: str
    index: int
    state: str
    reason: str = ""
    updated_at: str = ""


@dataclass(frozen=True, slots=True)
class Status:
    """Mirrors state_pb2.ResourceStatus."""

    kind: str
    name: str
    state: str
    reason: str = ""
    available_replicas: int = 0
    total_replicas: int = 0
    unavailable_replicas: int = 0
    version: int = 0
    generation: int = 0
    replicas: tuple[ReplicaStatus, ...] = ()
    last_change: str = ""
