"""BestFitSorter: the server whose chosen replicas keep the least free memory first.

Packing models tightly keeps large free blocks elsewhere for large models (Seldon picks a
server effectively at random here). Ties go to the server name so the choice is deterministic.
"""

from __future__ import annotations

from modelplane.services.scheduler.policy.base import PlacementRequest, ServerOption


class BestFitSorter:
    name = "BestFitSorter"

    def describe(self) -> str:
        return "servers whose chosen replicas leave the least free memory first, then by name"

    def key(self, request: PlacementRequest, option: ServerOption) -> tuple[int, str]:
        return (option.leftover_bytes(request), option.server.name)
