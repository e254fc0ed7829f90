"""What the scheduler knows about servers and their replicas (its in-memory view of the cluster).

Frozen snapshots (``ReplicaView``, ``ServerView``) are what placement policies see; they are built
from the mutable ``ReplicaRecord`` table and the booked memory (views.py keeps them current), so a
policy can never change the scheduler's state and the decision is a pure function of its inputs.

Placement looks at every server for every decision, so each ``ServerView`` computes, once and
only when first asked, a ``ServerSummary`` of the request-independent facts (capabilities common
to its usable replicas, the versions it holds, its schedulable replicas ordered by free memory
with prefix sums). A caller that changes one server between decisions builds a new view for that
server only (``with_replicas`` when only bookings changed, which updates the summary instead of
recomputing it); the other views keep their summaries.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from operator import itemgetter, neg
from typing import NamedTuple


class ReplicaView(NamedTuple):
    """One server replica as placement sees it.

    A named tuple rather than a frozen dataclass: bookings build one per changed replica, and a
    tuple is built in C where a frozen dataclass sets each field through ``object.__setattr__``.
    Change one with ``_replace``.
    """

    server: str
    # Shadows ``tuple.index`` (never called on a view): the replica's index is the name users know.
    index: int  # type: ignore[assignment]
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
    # Memory promised to loads not yet confirmed (LoadRequested..Loaded/LoadFailed), in bytes.
    # Callers may also fold it into used_bytes; free memory subtracts both.
    reserved_bytes: int = 0

    @property
    def key(self) -> str:
        return f"{self.server}.{self.index}"

    @property
    def capacity_bytes(self) -> int:
        """Memory that may be promised to models: memory x (1 + overcommit%)."""
        return self.memory_bytes * (100 + max(0, self.overcommit_percent)) // 100

    @property
    def free_bytes(self) -> int:
        """max(0, available - reserved), where available = capacity - used."""
        return max(0, self.capacity_bytes - self.used_bytes - self.reserved_bytes)

    @property
    def capability_set(self) -> frozenset[str]:
        """The capabilities, trimmed."""
        return trimmed_capabilities(self.capabilities)


@lru_cache(maxsize=1024)
def trimmed_capabilities(capabilities: tuple[str, ...]) -> frozenset[str]:
    """A capability list as a set of trimmed names (memoised: replicas of a server share one list)."""
    return frozenset(c.strip() for c in capabilities)


_ORDER = itemgetter(0, 1)


# How many held names a summary keeps beside its base set before merging them into it (see
# ``ServerSummary.held_recent``): small enough that extending the recent set is cheap, large
# enough that the base set (hundreds of names) is copied once per this many bookings.
RECENT_HELD_LIMIT = 32


class ServerSummary(NamedTuple):
    """Request-independent facts about one server, computed once per ``ServerView``.

    A named tuple rather than a frozen dataclass: one is built per booking, and a tuple is
    built in C where a frozen dataclass sets each field through ``object.__setattr__``.
    """

    # Replicas without an unavailable_reason.
    usable_count: int
    # Capabilities (trimmed) offered by every usable replica.
    capabilities: frozenset[str]
    # "<model>_<version>" names assigned to any replica of the server: ``held_base |
    # held_recent`` (read through ``held``/``holds``). A booking extends the small recent set
    # instead of copying the whole base set, which grows to hundreds of names per server.
    held_base: frozenset[str]
    # Usable, non-draining replicas: most free memory first, then lower index.
    schedulable: tuple[ReplicaView, ...]
    # -free_bytes of ``schedulable`` (ascending, for bisect) and prefix sums of free_bytes.
    neg_free: tuple[int, ...]
    prefix_free: tuple[int, ...]
    # The parallel workers every schedulable replica reports, or None when they differ.
    workers: int | None
    # The server takes new models at all: it exists, expects replicas and has a usable one.
    accepting: bool = True
    # Held names added by bookings since ``held_base`` was last merged (at most RECENT_HELD_LIMIT).
    held_recent: frozenset[str] = frozenset()

    @property
    def held(self) -> frozenset[str]:
        """Every "<model>_<version>" name assigned to any replica of the server."""
        return self.held_base | self.held_recent if self.held_recent else self.held_base

    def holds(self, name: str) -> bool:
        """Some replica of the server has ``name`` ("<model>_<version>") assigned."""
        return name in self.held_base or name in self.held_recent

    def _compared(self) -> tuple[object, ...]:
        # How the held names are split between base and recent is bookkeeping, not a fact.
        return (
            self.usable_count,
            self.capabilities,
            self.held,
            self.schedulable,
            self.neg_free,
            self.prefix_free,
            self.workers,
            self.accepting,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSummary):
            return NotImplemented
        return self._compared() == other._compared()

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(self._compared())

    @classmethod
    def of(cls, replicas: tuple[ReplicaView, ...], accepting: bool = True) -> ServerSummary:
        usable = 0
        capabilities: frozenset[str] | None = None
        last_listed: tuple[str, ...] | None = None
        held: list[frozenset[str]] = []
        entries: list[tuple[int, int, ReplicaView]] = []
        workers: set[int] = set()
        for r in replicas:
            if r.assigned:
                held.append(r.assigned)
            if r.unavailable_reason:
                continue
            usable += 1
            # Replicas of one server usually share one capability tuple: intersect once per list.
            if r.capabilities is not last_listed:
                last_listed = r.capabilities
                caps = trimmed_capabilities(last_listed)
                capabilities = caps if capabilities is None else capabilities & caps
            if not r.draining:
                # free_bytes, inlined: this runs for every replica of every changed server.
                free = (
                    r.memory_bytes * (100 + max(0, r.overcommit_percent)) // 100
                    - r.used_bytes
                    - r.reserved_bytes
                )
                entries.append((-free if free > 0 else 0, r.index, r))
                workers.add(r.parallel_workers)
        entries.sort(key=_ORDER)
        neg_free = tuple([e[0] for e in entries])
        return cls(
            usable,
            capabilities or frozenset(),
            frozenset().union(*held) if held else frozenset(),
            tuple([e[2] for e in entries]),
            neg_free,
            tuple(accumulate(map(neg, neg_free), initial=0)),
            (workers.pop() if len(workers) == 1 else None) if workers else 0,
            accepting and usable > 0,
        )

    def fitting(self, required: int) -> int:
        """How many schedulable replicas have at least ``required`` bytes free."""
        return bisect_right(self.neg_free, -required)


@dataclass(frozen=True, slots=True)
class ServerView:
    """A Server resource and its live replicas, as placement sees it."""

    name: str
    # Server.spec.replicas: 0 means scaled to zero or being deleted (DeletedServerFilter).
    expected_replicas: int
    replicas: tuple[ReplicaView, ...] = ()
    # False when the Server resource is gone but replicas still report in.
    exists: bool = True
    _summary: ServerSummary | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def usable_replicas(self) -> tuple[ReplicaView, ...]:
        return tuple(r for r in self.replicas if not r.unavailable_reason)

    @property
    def summary(self) -> ServerSummary:
        """Request-independent facts placement needs (computed on first use, then kept)."""
        summary = self._summary
        if summary is None:
            summary = ServerSummary.of(self.replicas, self.exists and self.expected_replicas > 0)
            object.__setattr__(self, "_summary", summary)
        return summary

    @property
    def capabilities(self) -> frozenset[str]:
        """Capabilities (trimmed) that every usable replica offers."""
        return self.summary.capabilities

    def with_reserved(self, server_model_name: str, bytes_by_index: Mapping[int, int]) -> ServerView:
        """This server after LoadRequested of ``server_model_name`` on some replicas.

        Each replica in ``bytes_by_index`` that does not hold the version yet reserves its bytes
        and records the version.
        """
        changed = {
            r.index: r._replace(
                assigned=r.assigned | {server_model_name}, reserved_bytes=r.reserved_bytes + extra
            )
            for r in self.replicas
            if (extra := bytes_by_index.get(r.index)) is not None and server_model_name not in r.assigned
        }
        return self.with_replicas(changed)

    def with_replicas(self, changed: Mapping[int, ReplicaView]) -> ServerView:
        """This server with the replicas in ``changed`` (by index) replaced.

        When only the memory and the versions of the replicas changed (the common case: a model
        was booked or unbooked), the summary is updated rather than recomputed: each changed
        replica moves to its new rank (a bisect in a list of ~10), and the held versions are
        extended unless some were taken away. Anything else (capabilities, draining, usability,
        workers) leaves the summary to be recomputed on first use.
        """
        old = self._summary
        replicas = list(self.replicas)
        count = len(replicas)
        # Unless something beyond bookings changed (``whole``), the summary is updated here.
        whole = old is None
        neg_free = list(old.neg_free) if old is not None else []
        schedulable = list(old.schedulable) if old is not None else []
        added: frozenset[str] = frozenset()
        taken = False
        for index, after in changed.items():
            # Replicas are in index order, usually without gaps: then index = position.
            if index < count and replicas[index].index == index:
                at = index
            else:
                at = next((i for i, r in enumerate(replicas) if r.index == index), -1)
                if at < 0:
                    whole = True  # not a replica of this view
                    continue
            before = replicas[at]
            replicas[at] = after
            if whole:
                continue
            # Equal but for booked memory and versions: the summary only needs re-ranking.
            if (
                after.capabilities != before.capabilities
                or after.draining != before.draining
                or after.unavailable_reason != before.unavailable_reason
                or after.parallel_workers != before.parallel_workers
            ):
                whole = True
                continue
            now, was = after.assigned, before.assigned
            if now is not was:
                # One pass: ``was <= now`` exactly when ``now`` keeps len(was) of its names.
                new_names = now - was
                if len(now) - len(new_names) == len(was):
                    added = added | new_names if added else new_names
                else:
                    taken = True
            if before.draining or before.unavailable_reason:
                continue  # not schedulable, before or after (same shape)
            # ``before`` is in ``schedulable``: found by identity (a named tuple's equality
            # stops at the index for any other replica).
            at = schedulable.index(before)
            del neg_free[at], schedulable[at]
            # Order: most free first (ascending -free, negative free counting as 0), then index.
            free = (
                after.memory_bytes * (100 + max(0, after.overcommit_percent)) // 100
                - after.used_bytes
                - after.reserved_bytes
            )
            rank = -free if free > 0 else 0
            at = bisect_left(neg_free, rank)
            last, number = len(neg_free), after.index
            while at < last and neg_free[at] == rank and schedulable[at].index < number:
                at += 1
            neg_free.insert(at, rank)
            schedulable.insert(at, after)
        view = ServerView(self.name, self.expected_replicas, tuple(replicas), self.exists)
        if whole or old is None:
            return view
        base, recent = old.held_base, old.held_recent
        if taken:
            # A version left a replica: whether the server still holds it needs every replica.
            base, recent = frozenset().union(*[r.assigned for r in replicas]), frozenset()
        elif added and (added := added - base - recent):
            # Extend the small recent set; copy the large base set only once in a while.
            recent = recent | added
            if len(recent) > RECENT_HELD_LIMIT:
                base, recent = base | recent, frozenset()
        summary = ServerSummary(
            old.usable_count,
            old.capabilities,
            base,
            tuple(schedulable),
            tuple(neg_free),
            tuple(accumulate(map(neg, neg_free), initial=0)),
            old.workers,
            old.accepting,
            recent,
        )
        object.__setattr__(view, "_summary", summary)
        return view


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
