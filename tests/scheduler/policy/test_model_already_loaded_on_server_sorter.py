"""ModelAlreadyLoadedOnServerSorter: a server already holding the version comes first."""

from __future__ import annotations

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView, ServerView
from modelplane.services.scheduler.policy.base import PlacementRequest, ServerOption
from modelplane.services.scheduler.policy.sorters.model_already_loaded_on_server import (
    ModelAlreadyLoadedOnServerSorter,
)

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


def test_holding_server_first() -> None:
    """A server with a replica holding the version sorts before one without."""
    s = ModelAlreadyLoadedOnServerSorter()
    holder = ServerView(
        "b", 2, (replica(0, server="b"), replica(1, server="b", assigned=frozenset({"iris_1"})))
    )
    other = ServerView("a", 1, (replica(0, server="a"),))
    assert s.key(request(), ServerOption(holder, holder.replicas[:1])) < s.key(
        request(), ServerOption(other, other.replicas)
    )
