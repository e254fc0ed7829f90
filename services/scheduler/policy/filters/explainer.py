"""ExplainerFilter: a model that explains another model needs the alibi-explain capability."""

from __future__ import annotations

from collections.abc import Sequence

from modelplane.services.scheduler.cluster import ReplicaView
from modelplane.services.scheduler.policy.base import PlacementRequest, replicas_word

EXPLAINER_CAPABILITY = "alibi-explain"


class ExplainerFilter:
    name = "ExplainerFilter"

    def describe(self) -> str:
        return f"an explainer model (spec.explainerFor) needs capability {EXPLAINER_CAPABILITY}"

    def accepts(self, request: PlacementRequest, replica: ReplicaView) -> bool:
        return not request.spec.explainer_for or EXPLAINER_CAPABILITY in replica.capability_set

    def explain(
        self, request: PlacementRequest, rejected: Sequence[ReplicaView], passed: int, total: int
    ) -> str:
        if passed == 0:
            return f"missing capability {EXPLAINER_CAPABILITY} for an explainer"
        return f"{passed} of {total} {replicas_word(total)} offer {EXPLAINER_CAPABILITY}"
