"""BestFitStrategy (default): the server whose chosen replicas keep the least free memory wins.

Packing models tightly keeps large free blocks elsewhere for large models (Seldon picks a
server effectively at random here). Ties go to the server name, so the choice is deterministic.
"""

from __future__ import annotations

from modelplane.services.scheduler.policy.base import PlacementRequest, ServerOption


class BestFitStrategy:
    name = "best-fit"

    def describe(self) -> str:
        return "pack: the server whose chosen replicas keep the least free memory, then by name"

    def rank(self, leftover_bytes: int) -> int:
        return leftover_bytes

    def key(self, request: PlacementRequest, option: ServerOption) -> int:
        return self.rank(option.leftover_bytes(request))
