"""BestFitStrategy: the server left with the least free memory wins (packing)."""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ServerView
from modelplane.services.scheduler.policy.base import ServerOption
from modelplane.services.scheduler.policy.sorters.best_fit import BestFitStrategy
from tests.scheduler.policy.builders import MI, replica, request


def test_tighter_fit_ranks_first() -> None:
    """The option whose chosen replicas keep less free memory ranks lower (wins)."""
    s = BestFitStrategy()
    roomy = ServerView("a", 1, (replica(0, server="a"),))
    tight = ServerView("b", 1, (replica(0, used_bytes=80 * MI, server="b"),))
    req = request(memory_bytes=10 * MI)
    assert s.key(req, ServerOption(tight, tight.replicas)) < s.key(req, ServerOption(roomy, roomy.replicas))
    assert s.key(req, ServerOption(tight, tight.replicas)) == 10 * MI


def test_named_best_fit() -> None:
    """It is called best-fit and describes itself."""
    assert BestFitStrategy().name == "best-fit"
    assert "least free memory" in BestFitStrategy().describe()
