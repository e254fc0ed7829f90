"""Small builders shared by the policy tests: a placement request and a replica view."""

from __future__ import annotations

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView
from modelplane.services.scheduler.policy.base import PlacementRequest

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
