"""ReplicaUsableFilter: a replica whose runtime cannot run takes no models."""

from __future__ import annotations

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView
from modelplane.services.scheduler.policy.base import PlacementRequest
from modelplane.services.scheduler.policy.filters.replica_usable import ReplicaUsableFilter

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


def test_rejects_replica_with_unavailable_reason() -> None:
    """A replica reporting an unavailable_reason is rejected; a healthy one passes."""
    f = ReplicaUsableFilter()
    assert not f.accepts(request(), replica(unavailable_reason="no binary"))
    assert f.accepts(request(), replica())


def test_explains_with_the_reasons() -> None:
    """The explanation counts usable replicas and lists the reasons."""
    got = ReplicaUsableFilter().explain(request(), [replica(1, unavailable_reason="no binary")], 1, 2)
    assert got == "1 of 2 replicas usable (no binary)"
