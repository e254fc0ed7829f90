"""An index across servers: which few servers can win a placement, found without scanning them all.

Why: ``place`` judged every server for every decision; at 100 servers that was most of the
time spent placing 10,000 models. Most decisions are the plain case: a new model (no server
holds any version of it), all ``replicas`` wanted on one server, best-fit or spread. There the
winner among servers that look alike to the request (same trimmed capabilities, same parallel
workers, so the same bytes required per replica) is the one whose ``take`` most-free replicas
sum to the least (best-fit) or most (spread) free memory, among those whose ``take``-th replica
still fits. Each such group keeps its servers ordered by that sum (one sorted list per ``take``
asked for), so a decision bisects to the first sum that could fit and steps forward past the
few that do not.

``candidates`` returns the group winners plus every server the summary cannot judge (its
replicas disagree on parallel workers); ``place`` then runs its usual comparison over just
those. It returns None (judge every server) whenever that shortcut would not be exact: fewer
replicas acceptable than wanted (partial placement), an explainer, a model that already has
assignments somewhere (a server may hold its version), or a strategy other than the two
known ones. Tests compare every decision with and without the index.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from dataclasses import dataclass, field

from modelplane.services.scheduler.cluster import ServerView
from modelplane.services.scheduler.policy.base import PlacementRequest, ServerStrategy
from modelplane.services.scheduler.policy.sorters.best_fit import BestFitStrategy
from modelplane.services.scheduler.policy.sorters.spread import SpreadStrategy


@dataclass(slots=True)
class _Group:
    """Accepting servers with one set of capabilities and one parallel-workers count."""

    capabilities: frozenset[str]
    workers: int
    members: dict[str, ServerView] = field(default_factory=dict)
    # take -> (sum of free memory of the ``take`` most-free schedulable replicas, server name),
    # ascending, for members with at least ``take`` of them. Built on first use.
    ranked: dict[int, list[tuple[int, str]]] = field(default_factory=dict)

    def ranked_for(self, take: int) -> list[tuple[int, str]]:
        ranked = self.ranked.get(take)
        if ranked is None:
            ranked = self.ranked[take] = sorted(
                (view.summary.prefix_free[take], name)
                for name, view in self.members.items()
                if len(view.summary.neg_free) >= take
            )
        return ranked

    def add(self, name: str, view: ServerView) -> None:
        self.members[name] = view
        summary = view.summary
        for take, ranked in self.ranked.items():
            if len(summary.neg_free) >= take:
                insort(ranked, (summary.prefix_free[take], name))

    def replace(self, name: str, view: ServerView) -> None:
        old = self.members[name].summary
        self.members[name] = view
        new = view.summary
        old_count, new_count = len(old.neg_free), len(new.neg_free)
        for take, ranked in self.ranked.items():
            if old_count >= take:
                del ranked[bisect_left(ranked, (old.prefix_free[take], name))]
            if new_count >= take:
                insort(ranked, (new.prefix_free[take], name))

    def remove(self, name: str) -> None:
        summary = self.members.pop(name).summary
        for take, ranked in self.ranked.items():
            if len(summary.neg_free) >= take:
                del ranked[bisect_left(ranked, (summary.prefix_free[take], name))]


class IndexedViews(list[ServerView]):
    """Server views in name order, with the index over them (``place`` uses it when present)."""

    __slots__ = ("server_index",)

    def __init__(self, views: list[ServerView], index: ServerIndex) -> None:
        super().__init__(views)
        self.server_index = index


class ServerIndex:
    """The current views grouped for placement; kept in step by ``put`` (views.py calls it)."""

    def __init__(self, has_assignments: Callable[[str], bool]) -> None:
        # Model name -> it has an assignment (any state, any version) on some replica.
        self._has_assignments = has_assignments
        self._views: dict[str, ServerView] = {}
        self._groups: dict[tuple[frozenset[str], int], _Group] = {}
        self._group_of: dict[str, _Group] = {}
        # Accepting servers whose replicas disagree on parallel workers (judged one by one).
        self._irregular: dict[str, ServerView] = {}

    def put(self, name: str, view: ServerView | None) -> None:
        """Server ``name`` now looks like ``view`` (None: it is gone)."""
        group = self._group_of.get(name)
        if group is not None and view is not None:
            summary = view.summary
            if (
                summary.accepting
                and summary.workers == group.workers
                and summary.capabilities == group.capabilities
            ):
                # The usual change (a model booked or unbooked): same group, new sums.
                self._views[name] = view
                group.replace(name, view)
                return
        self._views.pop(name, None)
        self._irregular.pop(name, None)
        group = self._group_of.pop(name, None)
        if group is not None:
            group.remove(name)
            if not group.members:
                del self._groups[(group.capabilities, group.workers)]
        if view is None:
            return
        self._views[name] = view
        summary = view.summary
        if not summary.accepting:
            return
        if summary.workers is None:
            self._irregular[name] = view
            return
        key = (summary.capabilities, summary.workers)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(summary.capabilities, summary.workers)
        group.add(name, view)
        self._group_of[name] = group

    def candidates(
        self, request: PlacementRequest, need: int, take: int, strategy: ServerStrategy
    ) -> list[ServerView] | None:
        """Servers among which the best for ``request`` is, or None: judge every server."""
        spec = request.spec
        if need != take or spec.explainer_for:
            return None
        only = spec.server or request.current_server
        if only:
            view = self._views.get(only)
            return [view] if view is not None else []
        if type(strategy) is BestFitStrategy:
            least = True
        elif type(strategy) is SpreadStrategy:
            least = False
        else:
            return None
        if self._has_assignments(request.model):
            return None
        wanted = request.requirement_set
        found = list(self._irregular.values())
        for group in self._groups.values():
            if not wanted <= group.capabilities:
                continue
            required = spec.memory_bytes * (spec.parallel_workers or group.workers or 1)
            ranked = group.ranked_for(take)
            winner = (_least if least else _most)(ranked, group.members, take, required)
            if winner is not None:
                found.append(group.members[winner])
        return found


def _fits(view: ServerView, take: int, required: int) -> bool:
    """The server's ``take``-th most-free schedulable replica has ``required`` bytes free."""
    return view.summary.neg_free[take - 1] <= -required


def _least(
    ranked: list[tuple[int, str]], members: dict[str, ServerView], take: int, required: int
) -> str | None:
    """Best-fit: the fitting server with the smallest free sum, then the first name."""
    # A sum below take x required cannot fit; among equal sums names ascend.
    for at in range(bisect_left(ranked, (take * required, "")), len(ranked)):
        name = ranked[at][1]
        if _fits(members[name], take, required):
            return name
    return None


def _most(
    ranked: list[tuple[int, str]], members: dict[str, ServerView], take: int, required: int
) -> str | None:
    """Spread: the fitting server with the largest free sum, then the first name."""
    floor = take * required
    end = len(ranked)
    # Runs of equal sums, largest first; within a run names ascend, so the first fit wins.
    while end > 0 and (total := ranked[end - 1][0]) >= floor:
        start = bisect_left(ranked, (total, ""), 0, end)
        for at in range(start, end):
            name = ranked[at][1]
            if _fits(members[name], take, required):
                return name
        end = start
    return None
