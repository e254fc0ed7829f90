"""SpreadStrategy: the server whose chosen replicas keep the most free memory wins.

Spreading leaves headroom on every server (fewer evictions under overcommit, smaller blast
radius when a server goes) at the cost of fragmentation. Ties go to the server name.
"""

from __future__ import annotations

from modelplane.services.scheduler.policy.base import PlacementRequest, ServerOption


class SpreadStrategy:
    name = "spread"

    def describe(self) -> str:
        return "spread: the server whose chosen replicas keep the most free memory, then by name"

    def rank(self, leftover_bytes: int) -> int:
        return -leftover_bytes

    def key(self, request: PlacementRequest, option: ServerOption) -> int:
        return self.rank(option.leftover_bytes(request))
