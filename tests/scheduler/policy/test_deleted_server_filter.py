"""DeletedServerFilter: servers scaled to zero or deleted take no models."""

from __future__ import annotations

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView, ServerView
from modelplane.services.scheduler.policy.base import PlacementRequest
from modelplane.services.scheduler.policy.filters.deleted_server import DeletedServerFilter

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


def test_rejects_server_scaled_to_zero() -> None:
    """A server expecting 0 replicas (scaled to zero or being deleted) is rejected."""
    assert (
        DeletedServerFilter().reject(request(), ServerView("s", 0, (replica(),)))
        == "server is scaled to 0 replicas"
    )


def test_rejects_deleted_server_resource() -> None:
    """Replicas still reporting for a deleted Server resource take no models."""
    got = DeletedServerFilter().reject(request(), ServerView("s", 1, (replica(),), exists=False))
    assert got == "server resource is deleted"


def test_keeps_live_server() -> None:
    """A server that exists and expects replicas passes; the filter describes itself."""
    f = DeletedServerFilter()
    assert f.reject(request(), ServerView("s", 1)) is None
    assert f.name == "DeletedServerFilter"
    assert f.describe()
