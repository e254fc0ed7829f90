"""ModelAlreadyLoadedOnServerSorter: a server already holding the version comes first."""

from __future__ import annotations

from modelplane.services.scheduler.policy.base import PlacementRequest, ServerOption


class ModelAlreadyLoadedOnServerSorter:
    name = "ModelAlreadyLoadedOnServerSorter"

    def describe(self) -> str:
        return "servers that already hold this model version first"

    def key(self, request: PlacementRequest, option: ServerOption) -> int:
        return 0 if option.server.summary.holds(request.server_model_name) else 1
