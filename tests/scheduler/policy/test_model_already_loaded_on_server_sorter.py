"""ModelAlreadyLoadedOnServerSorter: a server already holding the version comes first."""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ServerView
from modelplane.services.scheduler.policy.base import ServerOption
from modelplane.services.scheduler.policy.sorters.model_already_loaded_on_server import (
    ModelAlreadyLoadedOnServerSorter,
)
from tests.scheduler.policy.builders import replica, request


def test_holding_server_first() -> None:
    """A server with a replica holding the version sorts before one without."""
    s = ModelAlreadyLoadedOnServerSorter()
    holder = ServerView(
        "b", 2, (replica(0, server="b"), replica(1, server="b", assigned=frozenset({"iris_1"})))
    )
    other = ServerView("a", 1, (replica(0, server="a"),))
    assert s.key(request(), ServerOption(holder, holder.replicas[:1])) < s.key(
        request(), ServerOption(other, other.replicas)
    )
