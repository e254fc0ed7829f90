"""ModelAlreadyLoadedSorter: replicas already holding the version come first."""

from __future__ import annotations

from modelplane.services.scheduler.policy.sorters.model_already_loaded import ModelAlreadyLoadedSorter
from tests.scheduler.policy.builders import replica, request


def test_holder_sorts_first() -> None:
    """A replica holding (or loading) the version sorts before one that does not."""
    s = ModelAlreadyLoadedSorter()
    assert s.key(request(), replica(1, assigned=frozenset({"iris_1"}))) < s.key(request(), replica(0))


def test_other_versions_do_not_count() -> None:
    """Holding another version of the model is not holding this one."""
    s = ModelAlreadyLoadedSorter()
    assert s.key(request(), replica(1, assigned=frozenset({"iris_2"}))) == s.key(request(), replica(0))
