"""ReplicaDrainingFilter: a draining replica takes no new models."""

from __future__ import annotations

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView
from modelplane.services.scheduler.policy.base import PlacementRequest
from modelplane.services.scheduler.policy.filters.replica_draining import ReplicaDrainingFilter

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
