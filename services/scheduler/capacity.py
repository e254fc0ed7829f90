"""Memory bookkeeping per replica and the server scale requests that follow from it (pure).

Design:
- Memory of a model version on a replica is *reserved* from LoadRequested until the agent reports
  it Loaded (Loading included), then *loaded* until it is unloaded; a LoadFailed or Unloaded
  assignment books nothing. A replica's ``available`` is its capacity (memory x (1 +
  overcommit%)) minus loaded memory; placement sees ``available - reserved`` as free memory, so
  two loads in flight never get the same bytes.
- ``book`` computes every replica's booking from all placements; ``Ledger`` keeps the same
  result up to date one model at a time (the scheduler decides per model, and recomputing all
  bookings per decision made placing N models cost O(N^2)).
- Scale requests follow Seldon v2 (reference §6): when a model on a server got fewer replicas
  than it wants, ask for min(largest desired replicas of the models on that server,
  maxReplicas (0 = unbounded)); when replicas become empty, ask for max(minReplicas (>= 1),
  expected - empty replicas). A request only exists while its target differs from the Server's
  replica count, so a satisfied request disappears by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

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
    # Immutable, so a replica view can share it instead of copying it (bookings replace it).
    models: frozenset[str] = frozenset()

    @property
    def used(self) -> int:
        return self.reserved + self.loaded


def book(placements: Mapping[str, ModelRecord], parallel_workers: Callable[[str], int]) -> dict[str, Booking]:
    """Replica key -> booking, from every assignment of every model version.

    ``parallel_workers(server)`` gives the server's ServerConfig parallel workers (0 = unknown).
    """
    booked: dict[str, Booking] = {}
    names: dict[str, set[str]] = {}
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
                names.setdefault(a.replica_key, set()).add(server_model_name(name, version.version))
    for key, entry in booked.items():
        entry.models = frozenset(names[key])
    return booked


class _Share(NamedTuple):
    """What one model books on one replica (a tuple: one is made per assignment change)."""

    reserved: int
    loaded: int
    names: frozenset[str]


class Ledger:
    """Bookings per replica, kept equal to ``book(placements, ...)`` by per-model deltas.

    ``rebook(name, record, parallel_workers)`` swaps what model ``name`` booked for what its
    record books now. Server model names start with the model name, so two models never book the
    same name and a model's names can be taken out of a replica's set without counting. The
    ledger also indexes which replicas and servers any assignment of a model names (in any
    state), so "the models on replica X" does not scan every placement.
    """

    def __init__(self) -> None:
        # Replica key -> booking; a replica that books nothing has no entry (as in ``book``).
        self.booked: dict[str, Booking] = {}
        self._shares: dict[str, dict[str, _Share]] = {}
        self._places: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._on_replica: dict[str, set[str]] = {}
        self._on_server: dict[str, set[str]] = {}

    def rebook(
        self, name: str, record: ModelRecord | None, parallel_workers: Callable[[str], int]
    ) -> set[str]:
        """Book ``record`` (None = nothing) for model ``name``; the replica keys whose booking changed."""
        new, keys, servers = _shares_of(name, record, parallel_workers)
        old = self._shares.pop(name, None)
        if new:
            self._shares[name] = new
        self._move_places(name, keys, servers)
        if old is None:
            # A model booked for the first time (the usual case): nothing to take back.
            booked = self.booked
            for key, share in new.items():
                entry = booked.get(key)
                if entry is None:
                    booked[key] = Booking(share.reserved, share.loaded, share.names)
                else:
                    entry.reserved += share.reserved
                    entry.loaded += share.loaded
                    entry.models |= share.names
            return set(new)
        changed: set[str] = set()
        for key in old.keys() | new.keys():
            before, after = old.get(key), new.get(key)
            if before == after:
                continue
            changed.add(key)
            entry = self.booked.get(key)
            if entry is None:
                entry = self.booked[key] = Booking()
            if before is not None:
                entry.reserved -= before.reserved
                entry.loaded -= before.loaded
                entry.models -= before.names
            if after is not None:
                entry.reserved += after.reserved
                entry.loaded += after.loaded
                entry.models |= after.names
            if not entry.models:
                del self.booked[key]
        return changed

    def models_on_replica(self, key: str) -> set[str]:
        """Models with an assignment (any state) on replica ``key``."""
        return self._on_replica.get(key, set())

    def has_assignments(self, name: str) -> bool:
        """Model ``name`` has an assignment (any state, any version) on some replica."""
        return name in self._places

    def models_on_server(self, server: str) -> set[str]:
        """Models with an assignment (any state) on a replica of ``server``."""
        return self._on_server.get(server, set())

    def _move_places(self, name: str, keys: frozenset[str], servers: frozenset[str]) -> None:
        places = self._places.get(name)
        if places is None:
            # Placed for the first time (the usual case): only additions.
            if keys:
                self._places[name] = (keys, servers)
                for key in keys:
                    self._on_replica.setdefault(key, set()).add(name)
                for server in servers:
                    self._on_server.setdefault(server, set()).add(name)
            return
        old_keys, old_servers = places
        if keys == old_keys and servers == old_servers:
            return  # the usual re-reconcile: same replicas, other states
        if keys:
            self._places[name] = (keys, servers)
        else:
            self._places.pop(name, None)
        _reindex(self._on_replica, name, old_keys, keys)
        _reindex(self._on_server, name, old_servers, servers)


def _shares_of(
    name: str, record: ModelRecord | None, parallel_workers: Callable[[str], int]
) -> tuple[dict[str, _Share], frozenset[str], frozenset[str]]:
    """What ``record`` books per replica, and every replica and server it names."""
    if record is None:
        return {}, frozenset(), frozenset()
    shares: dict[str, _Share] = {}
    keys: set[str] = set()
    servers: set[str] = set()
    for version in record.versions:
        label = frozenset((server_model_name(name, version.version),))
        # A version's replicas are on one server: its size is looked up once per server met.
        sized_for: str | None = None
        size = 0
        for a in version.replicas:
            key = a.replica_key
            keys.add(key)
            servers.add(a.server)
            reserving = a.state in RESERVING
            if not reserving and a.state not in HOLDING:
                continue
            if a.server != sized_for:
                sized_for = a.server
                size = required_bytes(version.spec, parallel_workers(a.server))
            share = shares.get(key)
            if share is None:
                share = _Share(size, 0, label) if reserving else _Share(0, size, label)
            else:
                # Two versions of one model on one replica (a new version loads beside the old).
                share = _Share(
                    share.reserved + (size if reserving else 0),
                    share.loaded + (0 if reserving else size),
                    share.names | label,
                )
            shares[key] = share
    return shares, frozenset(keys), frozenset(servers)


def _reindex(index: dict[str, set[str]], name: str, old: frozenset[str], new: frozenset[str]) -> None:
    for place in old - new if new else old:
        members = index[place]
        members.discard(name)
        if not members:
            del index[place]
    for place in new - old if old else new:
        index.setdefault(place, set()).add(name)


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
