"""AvailableMemoryReplicaFilter: max(0, available - reserved) >= memory x workers, or already held."""

from __future__ import annotations

from modelplane.services.scheduler.policy.filters.available_memory import AvailableMemoryReplicaFilter
from tests.scheduler.policy.builders import MI, replica, request

F = AvailableMemoryReplicaFilter()


def test_fits_exactly() -> None:
    """A model needing exactly the free memory fits."""
    assert F.accepts(request(memory_bytes=100 * MI), replica())


def test_used_and_reserved_memory_count() -> None:
    """Loaded (used) and reserved memory both reduce what is free."""
    assert not F.accepts(request(memory_bytes=60 * MI), replica(used_bytes=50 * MI))
    assert not F.accepts(request(memory_bytes=60 * MI), replica(reserved_bytes=50 * MI))
    assert F.accepts(request(memory_bytes=50 * MI), replica(used_bytes=25 * MI, reserved_bytes=25 * MI))


def test_overcommit_raises_capacity() -> None:
    """Overcommit lets memory x (1 + overcommit%) be promised."""
    assert F.accepts(request(memory_bytes=60 * MI), replica(used_bytes=50 * MI, overcommit_percent=10))


def test_parallel_workers_multiply_required_memory() -> None:
    """Required memory is memory x parallel workers (the model's, else the server's)."""
    assert not F.accepts(request(memory_bytes=60 * MI, parallel_workers=2), replica())
    assert not F.accepts(request(memory_bytes=60 * MI), replica(parallel_workers=2))
    assert F.accepts(request(memory_bytes=50 * MI), replica(parallel_workers=2))


def test_replica_already_holding_the_model_passes() -> None:
    """A replica already loading or holding the version passes whatever its free memory."""
    full = replica(used_bytes=100 * MI, reserved_bytes=10 * MI, assigned=frozenset({"iris_1"}))
    assert F.accepts(request(memory_bytes=60 * MI), full)


def test_explanation_counts_and_names_the_need() -> None:
    """The explanation says how many replicas have room and how much is needed."""
    text = F.explain(request(memory_bytes=100 * MI), [replica(1, used_bytes=MI)], 1, 2)
    assert text == "1 of 2 replicas has enough memory (needs 100Mi)"
    assert F.name == "AvailableMemoryReplicaFilter"
    assert F.describe()
