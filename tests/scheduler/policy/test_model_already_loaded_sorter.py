"""ModelAlreadyLoadedSorter: replicas already holding the version come first."""

from __future__ import annotations

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView
from modelplane.services.scheduler.policy.base import PlacementRequest
from modelplane.services.scheduler.policy.sorters.model_already_loaded import ModelAlreadyLoadedSorter

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


def test_holder_sorts_first() -> None:
    """A replica holding (or loading) the version sorts before one that does not."""
    s = ModelAlreadyLoadedSorter()
    assert s.key(request(), replica(1, assigned=frozenset({"iris_1"}))) < s.key(request(), replica(0))


def test_other_versions_do_not_count() -> None:
    """Holding another version of the model is not holding this one."""
    s = ModelAlreadyLoadedSorter()
    assert s.key(request(), replica(1, assigned=frozenset({"iris_2"}))) == s.key(request(), replica(0))
