"""AvailableMemorySorter: replicas with more free memory come first."""

from __future__ import annotations

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView
from modelplane.services.scheduler.policy.base import PlacementRequest
from modelplane.services.scheduler.policy.sorters.available_memory import AvailableMemorySorter

MI = 1 << 20


def request(current_server: str = "", **spec: object) -> PlacementRequest:
    return PlacementRequest("iris", 1, ModelSpec(storage_uri="file:///m", **spec), current_server)  # type: ignore[arg-type]


def replica(index: int = 0, **fields: object) -> ReplicaView:
    values: dict[str, object] = {
        "server": "s",
        "index": index,
        "capabilities": ("sklearn",),
        "memory_bytes": 100 * MI,
    }
    values.update(fields)
    return ReplicaView(**values)  # type: ignore[arg-type]


def test_more_free_memory_first() -> None:
    """More free memory sorts first; reserved memory counts as not free."""
    s = AvailableMemorySorter()
    assert s.key(request(), replica(1)) < s.key(request(), replica(0, used_bytes=50 * MI))
    assert s.key(request(), replica(0, used_bytes=MI)) < s.key(request(), replica(1, reserved_bytes=2 * MI))
