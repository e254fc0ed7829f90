"""Memory bookkeeping per replica and the server scale requests that follow from it (pure).

Design:
- Memory of a model version on a replica is *reserved* from LoadRequested until the agent reports
  it Loaded (Loading included), then *loaded* until it is unloaded; a LoadFailed or Unloaded
  assignment books nothing. A replica's ``available`` is its capacity (memory x (1 +
  overcommit%)) minus loaded memory; placement sees ``available - reserved`` as free memory, so
  two loads in flight never get the same bytes.
- Scale requests follow Seldon v2 (reference §6): when a model on a server got fewer replicas
  than it wants, ask for min(largest desired replicas of the models on that server,
  maxReplicas (0 = unbounded)); when replicas become empty, ask for max(minReplicas (>= 1),
  expected - empty replicas). A request only exists while its target differs from the Server's
  replica count, so a satisfied request disappears by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from modelplane.libs import states
from modelplane.services.scheduler.cluster import ReplicaRecord, ServerRecord
from modelplane.services.scheduler.records import (
    ModelRecord,
    ReplicaUsage,
    ScaleRequest,
    ServerLimits,
    ServerUsage,
    VersionRecord,
    required_bytes,
    server_model_name,
)

# States whose memory is reserved (the load is under way) or loaded (the model is there).
RESERVING = frozenset({states.LOAD_REQUESTED, states.LOADING})
HOLDING = frozenset(
    {
        states.LOADED,
        states.AVAILABLE,
        states.LOADED_UNAVAILABLE,
        states.DRAINING,
        states.UNLOAD_ENVOY_REQUESTED,
        states.UNLOAD_REQUESTED,
        states.UNLOADING,
        # The model may still be in memory; it is counted until an unload succeeds.
        states.UNLOAD_FAILED,
    }
)


@dataclass(slots=True)
class Booking:
    """What is booked on one replica, in bytes, and by which model versions."""

    reserved: int = 0
    loaded: int = 0
    models: set[str] = field(default_factory=set)

    @property
    def used(self) -> int:
        return self.reserved + self.loaded


def book(placements: Mapping[str, ModelRecord], parallel_workers: Callable[[str], int]) -> dict[str, Booking]:
    """Replica key -> booking, from every assignment of every model version.

    ``parallel_workers(server)`` gives the server's ServerConfig parallel workers (0 = unknown).
    """
    booked: dict[str, Booking] = {}
    for name, record in placements.items():
        for version in record.versions:
            for a in version.replicas:
                reserving = a.state in RESERVING
                if not reserving and a.state not in HOLDING:
                    continue
                entry = booked.setdefault(a.replica_key, Booking())
                size = required_bytes(version.spec, parallel_workers(a.server))
                if reserving:
                    entry.reserved += size
                else:
                    entry.loaded += size
                entry.models.add(server_model_name(name, version.version))
    return booked


def capacity_bytes(memory_bytes: int, overcommit_percent: int) -> int:
    """Memory that may be promised to models: memory x (1 + overcommit%)."""
    return memory_bytes * (100 + max(0, overcommit_percent)) // 100


def server_usage(
    server: str, replicas: Iterable[ReplicaRecord], booked: Mapping[str, Booking]
) -> ServerUsage:
    """The booked memory of the live replicas of ``server``, lowest index first."""
    usage: list[ReplicaUsage] = []
    for replica in sorted(replicas, key=lambda r: r.index):
        entry = booked.get(replica.key, Booking())
        capacity = capacity_bytes(replica.memory_bytes, replica.overcommit_percent)
        usage.append(
            ReplicaUsage(
                index=replica.index,
                memory_bytes=replica.memory_bytes,
                overcommit_percent=replica.overcommit_percent,
                reserved_bytes=entry.reserved,
                loaded_bytes=entry.loaded,
                available_bytes=max(0, capacity - entry.loaded),
                models=tuple(sorted(entry.models)),
                draining=replica.draining,
            )
        )
    return ServerUsage(server, tuple(usage))


@dataclass(frozen=True, slots=True)
class Shortfall:
    """A model version placed on a server with fewer replicas than it wants."""

    model: str
    placed: int
    desired: int


def scale_request(
    server: ServerRecord,
    limits: ServerLimits,
    desired_on_server: Iterable[int],
    shortfalls: Iterable[Shortfall],
    empty_replicas: int,
    now: str,
) -> ScaleRequest | None:
    """The request the server needs now, or None when its replica count is right.

    ``desired_on_server``: the desired replicas of every model whose latest version is on it.
    """
    expected = server.expected_replicas
    if expected <= 0:
        return None  # scaled to zero or being deleted: not ours to grow back
    short = sorted(shortfalls, key=lambda s: s.model)
    if short:
        largest = max([*desired_on_server, *(s.desired for s in short)])
        target = min(largest, limits.max_replicas) if limits.max_replicas > 0 else largest
        if target > expected:
            first = short[0]
            more = f" (and {len(short) - 1} more)" if len(short) > 1 else ""
            reason = f"model {first.model} has {first.placed} of {first.desired} replicas{more}"
            return ScaleRequest(server.name, expected, target, "up", reason, now)
    if empty_replicas > 0:
        target = max(max(1, limits.min_replicas), expected - empty_replicas)
        if target < expected:
            noun = "replica is" if empty_replicas == 1 else "replicas are"
            reason = f"{empty_replicas} {noun} empty"
            return ScaleRequest(server.name, expected, target, "down", reason, now)
    return None


class EmptyReplicas:
    """Remembers the replicas that *became* empty (held models, now hold none), per server.

    A replica that never held a model is not "empty" in Seldon's sense: a fresh server must not
    be asked to shrink before anything was placed on it.
    """

    def __init__(self) -> None:
        self._had_models: set[str] = set()
        self._emptied: dict[str, set[str]] = {}

    def update(self, live: Iterable[ReplicaRecord], booked: Mapping[str, Booking]) -> None:
        seen: set[str] = set()
        for replica in live:
            seen.add(replica.key)
            emptied = self._emptied.setdefault(replica.server, set())
            if booked.get(replica.key, Booking()).models:
                self._had_models.add(replica.key)
                emptied.discard(replica.key)
            elif replica.key in self._had_models:
                emptied.add(replica.key)
        self._had_models &= seen
        for emptied in self._emptied.values():
            emptied &= seen

    def count(self, server: str) -> int:
        return len(self._emptied.get(server, ()))


def shortfall(name: str, version: VersionRecord) -> Shortfall | None:
    if version.missing <= 0:
        return None
    return Shortfall(name, version.spec.replicas - version.missing, version.spec.replicas)
