"""AvailableMemorySorter: replicas with more free memory first (spreads load within a server)."""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ReplicaView
from modelplane.services.scheduler.policy.base import PlacementRequest


class AvailableMemorySorter:
    name = "AvailableMemorySorter"

    def describe(self) -> str:
        return "replicas with more free memory (available - reserved) first"

    def key(self, request: PlacementRequest, replica: ReplicaView) -> int:
        return -replica.free_bytes
