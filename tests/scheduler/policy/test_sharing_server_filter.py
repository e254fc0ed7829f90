"""SharingServerFilter: a model pinned with spec.server goes only to that server."""

from __future__ import annotations

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView, ServerView
from modelplane.services.scheduler.policy.base import PlacementRequest
from modelplane.services.scheduler.policy.filters.sharing import SharingServerFilter

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


def test_pinned_model_rejects_other_servers() -> None:
    """A pinned model rejects every other server and names the pin."""
    assert (
        SharingServerFilter().reject(request(server="a"), ServerView("b", 1)) == "model is pinned to server a"
    )


def test_pinned_model_keeps_its_server() -> None:
    """A pinned model keeps the server it is pinned to."""
    assert SharingServerFilter().reject(request(server="a"), ServerView("a", 1)) is None


def test_unpinned_model_keeps_every_server() -> None:
    """A model without spec.server may go anywhere; the filter describes itself."""
    f = SharingServerFilter()
    assert f.reject(request(), ServerView("b", 1)) is None
    assert f.name == "SharingServerFilter"
    assert f.describe()
