"""ModelAlreadyOnServerSorter: a server already holding the version comes first."""

from __future__ import annotations

from modelplane.services.scheduler.policy.base import PlacementRequest, ServerOption


class ModelAlreadyOnServerSorter:
    name = "ModelAlreadyOnServerSorter"

    def describe(self) -> str:
        return "servers that already hold this model version first"

    def key(self, request: PlacementRequest, option: ServerOption) -> int:
        return 0 if any(request.holds(r) for r in option.server.replicas) else 1
