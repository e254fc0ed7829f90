"""The placement decision: which replicas of which server get a model version (pure).

Pipeline (Seldon v2 semantics, with our improvements noted):
1. server filters (stop at the first that rejects a server, and remember why);
2. per remaining server, replica filters in order; a server is out as soon as fewer than the
   desired replicas pass a filter, and that filter explains why;
3. the passing replicas are sorted (already holding the version, more free memory, lower index)
   and the first ``desired`` are chosen;
4. the feasible servers are sorted (already holding the version, then best fit, then name):
   the first wins. All replicas of one version live on one server.
Nothing feasible -> ``Unplaceable`` whose reason names every server and what rejected it.

Room for issue 3: partial placement with ``minReplicas`` is a second pass with threshold
``min_replicas`` (``place(..., threshold=...)``); the filters already report counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from modelplane.services.scheduler.cluster import ReplicaView, ServerView
from modelplane.services.scheduler.policy.base import (
    PlacementRequest,
    ReplicaFilter,
    ReplicaSorter,
    ServerFilter,
    ServerOption,
    ServerSorter,
)
from modelplane.services.scheduler.policy.filters.deleted_server import DeletedServerFilter
from modelplane.services.scheduler.policy.filters.draining import ReplicaDrainingFilter
from modelplane.services.scheduler.policy.filters.explainer import ExplainerFilter
from modelplane.services.scheduler.policy.filters.memory import AvailableMemoryFilter
from modelplane.services.scheduler.policy.filters.replica_usable import ReplicaUsableFilter
from modelplane.services.scheduler.policy.filters.requirements import RequirementsFilter
from modelplane.services.scheduler.policy.filters.server_replicas import ServerReplicaFilter
from modelplane.services.scheduler.policy.filters.sharing import SharingServerFilter
from modelplane.services.scheduler.policy.filters.version_server import VersionServerFilter
from modelplane.services.scheduler.policy.sorters.already_loaded import ModelAlreadyLoadedSorter
from modelplane.services.scheduler.policy.sorters.best_fit import BestFitSorter
from modelplane.services.scheduler.policy.sorters.free_memory import AvailableMemorySorter
from modelplane.services.scheduler.policy.sorters.model_on_server import ModelAlreadyOnServerSorter
from modelplane.services.scheduler.policy.sorters.replica_index import ReplicaIndexSorter


@dataclass(frozen=True, slots=True)
class PlacementPolicy:
    server_filters: tuple[ServerFilter, ...]
    replica_filters: tuple[ReplicaFilter, ...]
    replica_sorters: tuple[ReplicaSorter, ...]
    server_sorters: tuple[ServerSorter, ...]

    def describe(self) -> list[str]:
        """One line per policy object, in the order they apply."""
        groups: list[tuple[str, Sequence[ServerFilter | ReplicaFilter | ReplicaSorter | ServerSorter]]] = [
            ("server filter", self.server_filters),
            ("replica filter", self.replica_filters),
            ("replica sorter", self.replica_sorters),
            ("server sorter", self.server_sorters),
        ]
        return [f"{kind} {obj.name}: {obj.describe()}" for kind, objs in groups for obj in objs]


def default_policy() -> PlacementPolicy:
    return PlacementPolicy(
        server_filters=(
            DeletedServerFilter(),
            SharingServerFilter(),
            VersionServerFilter(),
            ServerReplicaFilter(),
        ),
        replica_filters=(
            ReplicaUsableFilter(),
            RequirementsFilter(),
            ExplainerFilter(),
            ReplicaDrainingFilter(),
            AvailableMemoryFilter(),
        ),
        replica_sorters=(ModelAlreadyLoadedSorter(), AvailableMemorySorter(), ReplicaIndexSorter()),
        server_sorters=(ModelAlreadyOnServerSorter(), BestFitSorter()),
    )


@dataclass(frozen=True, slots=True)
class Placed:
    server: str
    # Chosen replica indexes, in the sorters' order.
    indexes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Unplaceable:
    reason: str
    # Per server, why it was rejected (for status and tests).
    rejections: dict[str, str] = field(default_factory=dict)


Decision = Placed | Unplaceable


def _choose_replicas(
    request: PlacementRequest, server: ServerView, policy: PlacementPolicy, needed: int
) -> tuple[ReplicaView, ...] | str:
    """The chosen replicas, or why this server cannot take ``needed`` of them."""
    remaining: list[ReplicaView] = list(server.replicas)
    for rule in policy.replica_filters:
        passed = [r for r in remaining if rule.accepts(request, r)]
        rejected = [r for r in remaining if r not in passed]
        if rejected and len(passed) < needed:
            return rule.explain(request, rejected, len(passed), len(remaining))
        remaining = passed
    if len(remaining) < needed:
        # No filter objected: the server simply has too few replicas (a scale-up would help).
        return f"has {len(remaining)} connected {_replicas(len(remaining))}, needs {needed}"

    def sort_key(replica: ReplicaView) -> tuple[object, ...]:
        return tuple(s.key(request, replica) for s in policy.replica_sorters)

    return tuple(sorted(remaining, key=sort_key)[:needed])


def place(
    request: PlacementRequest,
    servers: Sequence[ServerView],
    policy: PlacementPolicy,
    *,
    threshold: int | None = None,
) -> Decision:
    """Decide where ``request`` goes among ``servers`` (deterministic for equal inputs)."""
    needed = request.desired if threshold is None else threshold
    pinned = request.spec.server
    if pinned and all(s.name != pinned for s in servers):
        return Unplaceable(f"server {pinned} (pinned by spec.server) does not exist")
    rejections: dict[str, str] = {}
    options: list[ServerOption] = []
    for server in sorted(servers, key=lambda s: s.name):
        why: str | None = None
        for server_rule in policy.server_filters:
            why = server_rule.reject(request, server)
            if why is not None:
                break
        if why is None:
            chosen = _choose_replicas(request, server, policy, needed)
            if isinstance(chosen, str):
                why = chosen
            else:
                options.append(ServerOption(server, chosen))
        if why is not None:
            rejections[server.name] = why
    if options:

        def server_key(option: ServerOption) -> tuple[object, ...]:
            return (*(s.key(request, option) for s in policy.server_sorters), option.server.name)

        best = sorted(options, key=server_key)[0]
        return Placed(best.server.name, tuple(r.index for r in best.chosen))
    if not rejections:
        return Unplaceable("no servers are available")
    detail = "; ".join(f"server {name}: {why}" for name, why in rejections.items())
    return Unplaceable(f"no server can take {needed} {_replicas(needed)}: {detail}", rejections)


def _replicas(n: int) -> str:
    return "replica" if n == 1 else "replicas"
