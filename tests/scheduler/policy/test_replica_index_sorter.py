"""ReplicaIndexSorter: lower replica indexes come first (they survive scale-down longer)."""

from __future__ import annotations

from modelplane.services.scheduler.policy.sorters.replica_index import ReplicaIndexSorter
from tests.scheduler.policy.builders import replica, request


def test_lower_index_first() -> None:
    """Lower replica index sorts first."""
    s = ReplicaIndexSorter()
    assert s.key(request(), replica(0)) < s.key(request(), replica(1))
