"""AvailableMemoryReplicaFilter: the replica has room for the model, or already holds it.

free = max(0, memory x (1 + overcommit%) - used - reserved);
required = model memory x parallel workers (the model's, else the server's; x1 when unknown).
"""

from __future__ import annotations

from collections.abc import Sequence

from modelplane.libs.resources.quantity import format_bytes
from modelplane.services.scheduler.cluster import ReplicaView
from modelplane.services.scheduler.policy.base import PlacementRequest


class AvailableMemoryReplicaFilter:
    name = "AvailableMemoryReplicaFilter"

    def describe(self) -> str:
        return (
            "free memory (with overcommit, minus reserved) covers the model's memory x parallel "
            "workers, or the replica already holds the model"
        )

    def accepts(self, request: PlacementRequest, replica: ReplicaView) -> bool:
        return request.holds(replica) or replica.free_bytes >= request.required_on(replica)

    def explain(
        self, request: PlacementRequest, rejected: Sequence[ReplicaView], passed: int, total: int
    ) -> str:
        needs = max((request.required_on(r) for r in rejected), default=request.spec.memory_bytes)
        verb = "has" if passed == 1 else "have"
        return f"{passed} of {total} replicas {verb} enough memory (needs {format_bytes(needs)})"
