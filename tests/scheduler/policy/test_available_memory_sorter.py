"""AvailableMemorySorter: replicas with more free memory come first."""

from __future__ import annotations

from modelplane.services.scheduler.policy.sorters.available_memory import AvailableMemorySorter
from tests.scheduler.policy.builders import MI, replica, request


def test_more_free_memory_first() -> None:
    """More free memory sorts first; reserved memory counts as not free."""
    s = AvailableMemorySorter()
    assert s.key(request(), replica(1)) < s.key(request(), replica(0, used_bytes=50 * MI))
    assert s.key(request(), replica(0, used_bytes=MI)) < s.key(request(), replica(1, reserved_bytes=2 * MI))
