"""ReplicaUsableFilter: a replica whose runtime cannot run (unavailable_reason) takes no models."""

from __future__ import annotations

from collections.abc import Sequence

from modelplane.services.scheduler.cluster import ReplicaView
from modelplane.services.scheduler.policy.base import PlacementRequest, replicas_word


class ReplicaUsableFilter:
    name = "ReplicaUsableFilter"

    def describe(self) -> str:
        return "the replica reports no unavailable_reason"

    def accepts(self, request: PlacementRequest, replica: ReplicaView) -> bool:
        return not replica.unavailable_reason

    def explain(
        self, request: PlacementRequest, rejected: Sequence[ReplicaView], passed: int, total: int
    ) -> str:
        reasons = sorted({r.unavailable_reason for r in rejected})
        return f"{passed} of {total} {replicas_word(total)} usable (" + "; ".join(reasons) + ")"
