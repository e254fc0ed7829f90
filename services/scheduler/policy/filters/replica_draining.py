"""ReplicaDrainingFilter: a draining replica takes no new models."""

from __future__ import annotations

from collections.abc import Sequence

from modelplane.services.scheduler.cluster import ReplicaView
from modelplane.services.scheduler.policy.base import PlacementRequest, replicas_word


class ReplicaDrainingFilter:
    name = "ReplicaDrainingFilter"

    def describe(self) -> str:
        return "the replica is not draining"

    def accepts(self, request: PlacementRequest, replica: ReplicaView) -> bool:
        return not replica.draining

    def explain(
        self, request: PlacementRequest, rejected: Sequence[ReplicaView], passed: int, total: int
    ) -> str:
        return f"{len(rejected)} of {total} {replicas_word(total)} draining"
