"""What the scheduler knows about servers and their replicas (its in-memory view of the cluster).

Frozen snapshots (``ReplicaView``, ``ServerView``) are what placement policies see; they are built
fresh for each placement decision from the mutable ``ReplicaRecord`` table, so a policy can never
change the scheduler's state and the decision is a pure function of its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """One server replica as placement sees it."""

    server: str
    index: int
    capabilities: tuple[str, ...]
    memory_bytes: int
    overcommit_percent: int = 0
    # Memory of the model versions assigned here (loading, loaded or available), in bytes.
    used_bytes: int = 0
    draining: bool = False
    # Set when the replica cannot take models (e.g. its runtime binary is missing).
    unavailable_reason: str = ""
    # "<model>_<version>" names assigned to this replica (any non-inactive state).
    assigned: frozenset[str] = frozenset()
    # ServerConfig parallel workers: a model's memory counts this many times (0 = unknown = 1).
    parallel_workers: int = 0

    @property
    def key(self) -> str:
        return f"{self.server}.{self.index}"

    @property
    def capacity_bytes(self) -> int:
        """Memory that may be promised to models: memory x (1 + overcommit%)."""
        return self.memory_bytes * (100 + max(0, self.overcommit_percent)) // 100

    @property
    def free_bytes(self) -> int:
        return max(0, self.capacity_bytes - self.used_bytes)


@dataclass(frozen=True, slots=True)
class ServerView:
    """A Server resource and its live replicas, as placement sees it."""

    name: str
    # Server.spec.replicas: 0 means scaled to zero or being deleted (DeletedServerFilter).
    expected_replicas: int
    replicas: tuple[ReplicaView, ...] = ()
    # False when the Server resource is gone but replicas still report in.
    exists: bool = True

    @property
    def usable_replicas(self) -> tuple[ReplicaView, ...]:
        return tuple(r for r in self.replicas if not r.unavailable_reason)


@dataclass(slots=True)
class ReplicaRecord:
    """Mutable record of a live replica (from KV_REPLICAS plus heartbeats)."""

    server: str
    index: int
    incarnation: str
    capabilities: tuple[str, ...]
    memory_bytes: int
    overcommit_percent: int
    http_endpoint: str
    grpc_endpoint: str
    loaded_models: frozenset[str] = frozenset()
    draining: bool = False
    unavailable_reason: str = ""
    # Monotonic seconds of the last heartbeat (or registration).
    last_seen: float = 0.0
    # True once heartbeats stopped for longer than the heartbeat timeout.
    lost: bool = False

    @property
    def key(self) -> str:
        return f"{self.server}.{self.index}"


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """The parts of a Server resource placement needs."""

    name: str
    expected_replicas: int
    server_config: str
