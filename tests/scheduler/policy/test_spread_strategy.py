"""SpreadStrategy: the server left with the most free memory wins."""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ServerView
from modelplane.services.scheduler.policy.base import ServerOption
from modelplane.services.scheduler.policy.sorters.spread import SpreadStrategy
from tests.scheduler.policy.builders import MI, replica, request


def test_roomier_server_ranks_first() -> None:
    """The option whose chosen replicas keep more free memory ranks lower (wins)."""
    s = SpreadStrategy()
    roomy = ServerView("a", 1, (replica(0, server="a"),))
    tight = ServerView("b", 1, (replica(0, used_bytes=80 * MI, server="b"),))
    req = request(memory_bytes=10 * MI)
    assert s.key(req, ServerOption(roomy, roomy.replicas)) < s.key(req, ServerOption(tight, tight.replicas))


def test_named_spread() -> None:
    """It is called spread and describes itself."""
    assert SpreadStrategy().name == "spread"
    assert "most free memory" in SpreadStrategy().describe()
