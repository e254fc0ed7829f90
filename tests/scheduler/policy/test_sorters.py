"""Each placement sorter orders replicas or servers as Seldon v2 (plus best fit) prescribes."""

from __future__ import annotations

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView, ServerView
from modelplane.services.scheduler.policy.base import PlacementRequest, ServerOption
from modelplane.services.scheduler.policy.sorters.already_loaded import ModelAlreadyLoadedSorter
from modelplane.services.scheduler.policy.sorters.best_fit import BestFitSorter
from modelplane.services.scheduler.policy.sorters.free_memory import AvailableMemorySorter
from modelplane.services.scheduler.policy.sorters.model_on_server import ModelAlreadyOnServerSorter
from modelplane.services.scheduler.policy.sorters.replica_index import ReplicaIndexSorter

REQ = PlacementRequest("iris", 1, ModelSpec(storage_uri="x", memory_bytes=10))


def rep(index: int, used: int = 0, assigned: frozenset[str] = frozenset(), server: str = "s") -> ReplicaView:
    return ReplicaView(server, index, ("sklearn",), 100, used_bytes=used, assigned=assigned)


def test_already_loaded_first() -> None:
    """A replica holding the version sorts before one that does not."""
    s = ModelAlreadyLoadedSorter()
    assert s.key(REQ, rep(1, assigned=frozenset({"iris_1"}))) < s.key(REQ, rep(0))


def test_more_free_memory_first() -> None:
    """More free memory sorts first."""
    s = AvailableMemorySorter()
    assert s.key(REQ, rep(1, used=0)) < s.key(REQ, rep(0, used=50))


def test_lower_index_first() -> None:
    """Lower replica index sorts first."""
    s = ReplicaIndexSorter()
    assert s.key(REQ, rep(0)) < s.key(REQ, rep(1))


def test_server_holding_the_model_first() -> None:
    """A server that already holds the version sorts first."""
    s = ModelAlreadyOnServerSorter()
    holder = ServerView("b", 1, (rep(0, assigned=frozenset({"iris_1"}), server="b"),))
    other = ServerView("a", 1, (rep(0, server="a"),))
    assert s.key(REQ, ServerOption(holder, holder.replicas)) < s.key(REQ, ServerOption(other, other.replicas))


def test_best_fit_prefers_tightest_server_then_name() -> None:
    """The server left with the least free memory wins; equal fits go by name."""
    s = BestFitSorter()
    roomy = ServerView("a", 1, (rep(0, server="a"),))
    tight = ServerView("b", 1, (rep(0, used=80, server="b"),))
    assert s.key(REQ, ServerOption(tight, tight.replicas)) < s.key(REQ, ServerOption(roomy, roomy.replicas))
    twin = ServerView("c", 1, (rep(0, server="c"),))
    assert s.key(REQ, ServerOption(roomy, roomy.replicas)) < s.key(REQ, ServerOption(twin, twin.replicas))
