"""ReplicaUsableFilter: a replica whose runtime cannot run takes no models."""

from __future__ import annotations

from modelplane.services.scheduler.policy.filters.replica_usable import ReplicaUsableFilter
from tests.scheduler.policy.builders import replica, request


def test_rejects_replica_with_unavailable_reason() -> None:
    """A replica reporting an unavailable_reason is rejected; a healthy one passes."""
    f = ReplicaUsableFilter()
    assert not f.accepts(request(), replica(unavailable_reason="no binary"))
    assert f.accepts(request(), replica())


def test_explains_with_the_reasons() -> None:
    """The explanation counts usable replicas and lists the reasons."""
    got = ReplicaUsableFilter().explain(request(), [replica(1, unavailable_reason="no binary")], 1, 2)
    assert got == "1 of 2 replicas usable (no binary)"
