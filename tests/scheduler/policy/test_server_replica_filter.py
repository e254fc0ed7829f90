"""ServerReplicaFilter: a server needs a connected replica that can take models."""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ServerView
from modelplane.services.scheduler.policy.filters.server_replica import ServerReplicaFilter
from tests.scheduler.policy.builders import replica, request


def test_rejects_server_without_replicas() -> None:
    """A server with no connected replica is rejected with a waiting reason."""
    assert (
        ServerReplicaFilter().reject(request(), ServerView("s", 1))
        == "waiting for server replicas to connect"
    )


def test_rejects_server_whose_replicas_are_all_unusable() -> None:
    """A server whose replicas all report an unavailable_reason is rejected with that reason."""
    bad = ServerView("s", 1, (replica(unavailable_reason="tritonserver not found"),))
    assert ServerReplicaFilter().reject(request(), bad) == "no usable replica (tritonserver not found)"


def test_keeps_server_with_a_usable_replica() -> None:
    """One usable replica is enough; the filter describes itself."""
    f = ServerReplicaFilter()
    assert f.reject(request(), ServerView("s", 1, (replica(0, unavailable_reason="x"), replica(1)))) is None
    assert f.name == "ServerReplicaFilter"
    assert f.describe()
