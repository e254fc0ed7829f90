"""ReplicaDrainingFilter: a draining replica takes no new models."""

from __future__ import annotations

from modelplane.services.scheduler.policy.filters.replica_draining import ReplicaDrainingFilter
from tests.scheduler.policy.builders import replica, request


def test_rejects_draining_replica() -> None:
    """Draining replicas are rejected; others pass."""
    f = ReplicaDrainingFilter()
    assert not f.accepts(request(), replica(draining=True))
    assert f.accepts(request(), replica())


def test_explanation_counts_draining_replicas() -> None:
    """The explanation says how many replicas drain."""
    f = ReplicaDrainingFilter()
    assert f.explain(request(), [replica(draining=True)], 1, 2) == "1 of 2 replicas draining"
    assert f.describe()
