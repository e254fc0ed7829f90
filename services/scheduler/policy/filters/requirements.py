"""RequirementsFilter: every model requirement is among the replica's capabilities (trimmed)."""

from __future__ import annotations

from collections.abc import Sequence

from modelplane.services.scheduler.cluster import ReplicaView
from modelplane.services.scheduler.policy.base import PlacementRequest, replicas_word


def _missing(request: PlacementRequest, replica: ReplicaView) -> list[str]:
    capabilities = {c.strip() for c in replica.capabilities}
    wanted = [r.strip() for r in request.spec.requirements if r.strip()]
    return [r for r in wanted if r not in capabilities]


class RequirementsFilter:
    name = "RequirementsFilter"

    def describe(self) -> str:
        return "every model requirement is one of the replica's capabilities"

    def accepts(self, request: PlacementRequest, replica: ReplicaView) -> bool:
        return not _missing(request, replica)

    def explain(
        self, request: PlacementRequest, rejected: Sequence[ReplicaView], passed: int, total: int
    ) -> str:
        missing: list[str] = []
        for replica in rejected:
            for cap in _missing(request, replica):
                if cap not in missing:
                    missing.append(cap)
        word = "capability" if len(missing) == 1 else "capabilities"
        text = f"missing {word} {', '.join(missing)}"
        if passed == 0:
            return text
        return f"{passed} of {total} {replicas_word(total)} suitable ({len(rejected)} {text})"
