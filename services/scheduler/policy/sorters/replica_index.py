"""ReplicaIndexSorter: lower replica index first (low indexes survive a scale-down longer)."""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ReplicaView
from modelplane.services.scheduler.policy.base import PlacementRequest


class ReplicaIndexSorter:
    name = "ReplicaIndexSorter"

    def describe(self) -> str:
        return "lower replica index first"

    def key(self, request: PlacementRequest, replica: ReplicaView) -> int:
        return replica.index
