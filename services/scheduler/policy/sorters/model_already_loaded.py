"""ModelAlreadyLoadedSorter: replicas already loading or holding the version first (no reload)."""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ReplicaView
from modelplane.services.scheduler.policy.base import PlacementRequest


class ModelAlreadyLoadedSorter:
    name = "ModelAlreadyLoadedSorter"

    def describe(self) -> str:
        return "replicas already loading or holding this model version first"

    def key(self, request: PlacementRequest, replica: ReplicaView) -> int:
        return 0 if request.holds(replica) else 1
