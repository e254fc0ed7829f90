"""The placement decision: which replicas of which server get a model version (pure).

Pipeline (Seldon v2 semantics, with our improvements noted):
1. server filters (a server is out at the first filter that rejects it);
2. per remaining server, replica filters in order; a server is out as soon as fewer than the
   needed replicas pass a filter, and that filter explains why;
3. the passing replicas are sorted (already holding the version, more free memory, lower index)
   and the first ``desired`` are chosen;
4. the feasible servers are ordered by: more chosen replicas, the server sorters (already
   holding the version), the strategy (best-fit packs, spread spreads), then name. The first
   wins; never random. All replicas of one version live on one server.
5. Partial placement: when no server has ``replicas`` suitable replicas and ``0 < minReplicas <
   replicas``, a second pass needs only ``minReplicas`` and takes min(suitable, replicas); the
   result says how many are missing (the handler asks for a server scale-up) and why.
Nothing feasible -> ``Unplaceable`` whose reason names every candidate server and what rejected
it ("server triton: missing capability sklearn; server mlserver: 1 of 2 replicas has enough
memory (needs 100Mi)").

Speed: the scheduler places every model against every server, so for the default pipeline
``place`` evaluates a server from its cached ``ServerSummary`` in a few comparisons (capability
subset, a bisect on free memory, a prefix sum for the strategy) instead of running each policy
object over each replica. Servers the summary cannot decide exactly (a replica already holds the
version, replicas disagree on parallel workers, an explainer on a server where only some replicas
offer alibi-explain) and any custom pipeline go through the policy objects one by one. When the
servers come from ``ClusterViews`` they carry a ``ServerIndex`` that narrows most decisions to
a handful of servers (server_index.py). Reasons are only built when a placement fails or is
partial. Property tests check both paths agree.
"""

from __future__ import annotations

from bisect import bisect_right
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
    ServerStrategy,
    replicas_word,
)
from modelplane.services.scheduler.policy.filters.available_memory import AvailableMemoryReplicaFilter
from modelplane.services.scheduler.policy.filters.deleted_server import DeletedServerFilter
from modelplane.services.scheduler.policy.filters.explainer import EXPLAINER_CAPABILITY, ExplainerFilter
from modelplane.services.scheduler.policy.filters.replica_draining import ReplicaDrainingFilter
from modelplane.services.scheduler.policy.filters.replica_usable import ReplicaUsableFilter
from modelplane.services.scheduler.policy.filters.server_replica import ServerReplicaFilter
from modelplane.services.scheduler.policy.filters.server_requirement import ServerRequirementFilter
from modelplane.services.scheduler.policy.filters.sharing import SharingServerFilter
from modelplane.services.scheduler.policy.filters.version_server import VersionServerFilter
from modelplane.services.scheduler.policy.sorters.available_memory import AvailableMemorySorter
from modelplane.services.scheduler.policy.sorters.best_fit import BestFitStrategy
from modelplane.services.scheduler.policy.sorters.model_already_loaded import ModelAlreadyLoadedSorter
from modelplane.services.scheduler.policy.sorters.model_already_loaded_on_server import (
    ModelAlreadyLoadedOnServerSorter,
)
from modelplane.services.scheduler.policy.sorters.replica_index import ReplicaIndexSorter
from modelplane.services.scheduler.policy.strategies import DEFAULT_STRATEGY, strategy_by_name
from modelplane.services.scheduler.server_index import ServerIndex

__all__ = [
    "Decision",
    "Placed",
    "PlacementPolicy",
    "Unplaceable",
    "default_policy",
    "place",
    "strategy_by_name",
]

# Filters that narrow the candidates to one server (pin, version already running): servers they
# drop are not candidates, so a failure reason leaves them out.
_NARROWING = frozenset({SharingServerFilter.name, VersionServerFilter.name})

# The pipeline the summary-based evaluation reproduces exactly (filter order only changes which
# filter explains a rejection, never whether a server can take the request).
_INDEXED_SERVER_FILTERS = frozenset(
    {
        DeletedServerFilter,
        SharingServerFilter,
        VersionServerFilter,
        ServerReplicaFilter,
        ServerRequirementFilter,
    }
)
_INDEXED_REPLICA_FILTERS = frozenset(
    {ReplicaUsableFilter, AvailableMemoryReplicaFilter, ExplainerFilter, ReplicaDrainingFilter}
)
_INDEXED_REPLICA_SORTERS = (ModelAlreadyLoadedSorter, AvailableMemorySorter, ReplicaIndexSorter)
_INDEXED_SERVER_SORTERS = (ModelAlreadyLoadedOnServerSorter,)


@dataclass(frozen=True, slots=True)
class PlacementPolicy:
    server_filters: tuple[ServerFilter, ...]
    replica_filters: tuple[ReplicaFilter, ...]
    replica_sorters: tuple[ReplicaSorter, ...]
    server_sorters: tuple[ServerSorter, ...]
    strategy: ServerStrategy = field(default_factory=BestFitStrategy)
    # True when this is the default pipeline (any strategy): servers may be judged by summary.
    indexed: bool = field(init=False, default=False, compare=False)

    def __post_init__(self) -> None:
        indexed = (
            {type(f) for f in self.server_filters} == _INDEXED_SERVER_FILTERS
            and len(self.server_filters) == len(_INDEXED_SERVER_FILTERS)
            and {type(f) for f in self.replica_filters} == _INDEXED_REPLICA_FILTERS
            and len(self.replica_filters) == len(_INDEXED_REPLICA_FILTERS)
            and tuple(type(s) for s in self.replica_sorters) == _INDEXED_REPLICA_SORTERS
            and tuple(type(s) for s in self.server_sorters) == _INDEXED_SERVER_SORTERS
        )
        object.__setattr__(self, "indexed", indexed)

    def describe(self) -> list[str]:
        """One line per policy object, in the order they apply."""
        groups: list[tuple[str, Sequence[ServerFilter | ReplicaFilter | ReplicaSorter | ServerSorter]]] = [
            ("server filter", self.server_filters),
            ("replica filter", self.replica_filters),
            ("replica sorter", self.replica_sorters),
            ("server sorter", self.server_sorters),
        ]
        lines = [f"{kind} {obj.name}: {obj.describe()}" for kind, objs in groups for obj in objs]
        lines.append(f"server strategy {self.strategy.name}: {self.strategy.describe()}")
        return lines


def default_policy(strategy: str | ServerStrategy = DEFAULT_STRATEGY) -> PlacementPolicy:
    """Seldon v2's pipeline (plus usable-replica and one-server-per-version rules) and a strategy."""
    return PlacementPolicy(
        server_filters=(
            DeletedServerFilter(),
            SharingServerFilter(),
            VersionServerFilter(),
            ServerReplicaFilter(),
            ServerRequirementFilter(),
        ),
        replica_filters=(
            ReplicaUsableFilter(),
            AvailableMemoryReplicaFilter(),
            ExplainerFilter(),
            ReplicaDrainingFilter(),
        ),
        replica_sorters=(ModelAlreadyLoadedSorter(), AvailableMemorySorter(), ReplicaIndexSorter()),
        server_sorters=(ModelAlreadyLoadedOnServerSorter(),),
        strategy=strategy_by_name(strategy) if isinstance(strategy, str) else strategy,
    )


@dataclass(frozen=True, slots=True)
class Placed:
    server: str
    # Chosen replica indexes, in the sorters' order.
    indexes: tuple[int, ...]
    # Partial placement: desired replicas that found no room (a server scale-up would help)...
    missing: int = 0
    # ...and why the desired count could not be placed (per server, as in Unplaceable).
    shortfall: str = ""

    @property
    def partial(self) -> bool:
        return self.missing > 0


@dataclass(frozen=True, slots=True)
class Unplaceable:
    reason: str
    # Per server, why it was rejected (for status and tests)...
    rejections: dict[str, str] = field(default_factory=dict)
    # ...and the name of the policy object that rejected it.
    rejected_by: dict[str, str] = field(default_factory=dict)


Decision = Placed | Unplaceable


def place(
    request: PlacementRequest,
    servers: Sequence[ServerView],
    policy: PlacementPolicy,
    *,
    threshold: int | None = None,
    partial: bool = True,
) -> Decision:
    """Decide where ``request`` goes among ``servers`` (deterministic for equal inputs, in any order).

    ``threshold``: place on a server with at least this many suitable replicas, taking up to
    ``replicas`` (one pass, no fallback). ``partial=False`` disables the minReplicas fallback.
    """
    desired = request.desired
    if desired <= 0:
        return Placed("", ())
    pinned = request.spec.server
    if pinned and all(s.name != pinned for s in servers):
        return Unplaceable(f"server {pinned} (pinned by spec.server) does not exist")
    if threshold is not None:
        need = max(1, min(threshold, desired))
        found = _best(request, servers, policy, need, desired)
        if found is not None:
            return _placed(request, found)
        return _unplaceable(request, servers, policy, need, f"no server can take {_n(need)}")
    found = _best(request, servers, policy, desired, desired)
    if found is not None:
        return _placed(request, found)
    minimum = request.spec.min_replicas
    if not partial or not 0 < minimum < desired:
        return _unplaceable(request, servers, policy, desired, f"no server can take {_n(desired)}")
    found = _best(request, servers, policy, minimum, desired)
    if found is None:
        header = f"no server can take {_n(desired)} or the minimum of {minimum}"
        return _unplaceable(request, servers, policy, minimum, header)
    shortfall = _unplaceable(request, servers, policy, desired, f"no server can take {_n(desired)}")
    return _placed(request, found, shortfall.reason)


def _placed(request: PlacementRequest, option: ServerOption, shortfall: str = "") -> Placed:
    indexes = tuple(r.index for r in option.chosen)
    missing = request.desired - len(indexes)
    return Placed(option.server.name, indexes, missing, shortfall if missing else "")


def _best(
    request: PlacementRequest, servers: Sequence[ServerView], policy: PlacementPolicy, need: int, take: int
) -> ServerOption | None:
    """The winning server and its chosen replicas: at least ``need`` suitable, up to ``take``."""
    if not policy.indexed:
        best: tuple[tuple[object, ...], ServerOption] | None = None
        for server in servers:
            option = _evaluate(request, server, policy, need, take)[0]
            if option is not None:
                key = _option_key(request, option, policy)
                if best is None or key < best[0]:
                    best = (key, option)
        return best[1] if best is not None else None
    index = getattr(servers, "server_index", None)
    if isinstance(index, ServerIndex):
        narrowed = index.candidates(request, need, take, policy.strategy)
        if narrowed is not None:
            servers = narrowed
    return _best_indexed(request, servers, policy, need, take)


def _best_indexed(
    request: PlacementRequest, servers: Sequence[ServerView], policy: PlacementPolicy, need: int, take: int
) -> ServerOption | None:
    """``_best`` for the default pipeline, judging most servers from their summaries.

    The hot loop of the scheduler: one pass, no calls into policy objects, no allocation for a
    server that cannot take the request.
    """
    spec = request.spec
    # Sharing and VersionServer leave at most one candidate name.
    only = spec.server or request.current_server
    if spec.server and request.current_server and spec.server != request.current_server:
        return None
    wanted = request.requirement_set
    name = request.server_model_name
    explainer = bool(spec.explainer_for)
    memory = spec.memory_bytes
    own_workers = spec.parallel_workers
    rank = policy.strategy.rank
    # The best so far, compared as (more replicas, holds the version, strategy rank, name).
    best_server: ServerView | None = None
    best_option: ServerOption | None = None
    best_count, best_on, best_rank, best_name = 0, 1, 0, ""
    for server in servers:
        # DeletedServer, ServerReplica, ServerRequirement, Sharing, VersionServer.
        summary = server._summary or server.summary
        if not summary.accepting or not wanted <= summary.capabilities or (only and server.name != only):
            continue
        workers = summary.workers
        if (
            workers is None
            # ``summary.holds(name)``, inlined: this runs for every candidate server.
            or name in summary.held_base
            or name in summary.held_recent
            or (explainer and EXPLAINER_CAPABILITY not in summary.capabilities)
        ):
            # The summary cannot decide: run the policy objects on this server.
            option = _evaluate(request, server, policy, need, take)[0]
            if option is None:
                continue
            count = len(option.chosen)
            on = 0 if summary.holds(name) else 1
            leftover = option.leftover_bytes(request)
        else:
            # Replica filters: every schedulable replica passes all but AvailableMemory, and the
            # sorters order them by free memory then index: the summary's order. So the
            # suitable replicas are a prefix of it, found by bisect.
            required = memory * (own_workers or workers or 1)
            neg_required = -required
            neg_free = summary.neg_free
            n = len(neg_free)
            if n < need or neg_free[need - 1] > neg_required:
                continue
            if n >= take and neg_free[take - 1] <= neg_required:
                count = take
            else:
                count = bisect_right(neg_free, neg_required)
            if best_server is not None and (count < best_count or (count == best_count and best_on == 0)):
                continue
            option = None
            on = 1
            leftover = summary.prefix_free[count] - count * required
        ranked = rank(leftover)
        # (count, on, ranked, name) compared field by field: no tuples built per server.
        if (
            best_server is None
            or count > best_count
            or (
                count == best_count
                and (
                    on < best_on
                    or (
                        on == best_on
                        and (ranked < best_rank or (ranked == best_rank and server.name < best_name))
                    )
                )
            )
        ):
            best_server, best_option = server, option
            best_count, best_on, best_rank, best_name = count, on, ranked, server.name
    if best_server is None:
        return None
    if best_option is None:
        best_option = ServerOption(best_server, best_server.summary.schedulable[:best_count])
    return best_option


def _option_key(
    request: PlacementRequest, option: ServerOption, policy: PlacementPolicy
) -> tuple[object, ...]:
    return (
        -len(option.chosen),
        *(s.key(request, option) for s in policy.server_sorters),
        policy.strategy.key(request, option),
        option.server.name,
    )


def _evaluate(
    request: PlacementRequest, server: ServerView, policy: PlacementPolicy, need: int, take: int
) -> tuple[ServerOption | None, str, str]:
    """Run the policy objects on one server: (option, "", "") or (None, rejecting rule, why)."""
    for server_rule in policy.server_filters:
        why = server_rule.reject(request, server)
        if why is not None:
            return None, server_rule.name, why
    remaining: list[ReplicaView] = list(server.replicas)
    for rule in policy.replica_filters:
        verdicts = [rule.accepts(request, r) for r in remaining]
        passed = [r for r, ok in zip(remaining, verdicts, strict=True) if ok]
        if len(passed) < need and len(passed) < len(remaining):
            rejected = [r for r, ok in zip(remaining, verdicts, strict=True) if not ok]
            return None, rule.name, rule.explain(request, rejected, len(passed), len(remaining))
        remaining = passed
    if len(remaining) < need:
        # No filter objected: the server simply has too few replicas (a scale-up would help).
        n = len(remaining)
        return None, ServerReplicaFilter.name, f"has {n} connected {replicas_word(n)}, needs {need}"

    def sort_key(replica: ReplicaView) -> tuple[object, ...]:
        return tuple(s.key(request, replica) for s in policy.replica_sorters)

    return ServerOption(server, tuple(sorted(remaining, key=sort_key)[:take])), "", ""


def _unplaceable(
    request: PlacementRequest, servers: Sequence[ServerView], policy: PlacementPolicy, need: int, header: str
) -> Unplaceable:
    """Why no server can take ``need`` replicas, per server (built only when placement fails)."""
    rejections: dict[str, str] = {}
    rejected_by: dict[str, str] = {}
    for server in sorted(servers, key=lambda s: s.name):
        option, rule, why = _evaluate(request, server, policy, need, need)
        if option is None:
            rejections[server.name] = why
            rejected_by[server.name] = rule
    if not rejections:
        return Unplaceable("no servers are available")
    shown = [n for n in rejections if rejected_by[n] not in _NARROWING] or list(rejections)
    detail = "; ".join(f"server {n}: {rejections[n]}" for n in shown)
    return Unplaceable(f"{header}: {detail}", rejections, rejected_by)


def _n(count: int) -> str:
    return f"{count} {replicas_word(count)}"
