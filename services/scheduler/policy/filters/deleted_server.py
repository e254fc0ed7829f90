"""DeletedServerFilter: no new models on a server scaled to 0 replicas or being deleted."""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ServerView
from modelplane.services.scheduler.policy.base import PlacementRequest


class DeletedServerFilter:
    name = "DeletedServerFilter"

    def describe(self) -> str:
        return "the server exists and expects at least one replica"

    def reject(self, request: PlacementRequest, server: ServerView) -> str | None:
        if not server.exists:
            return "server resource is deleted"
        if server.expected_replicas == 0:
            return "server is scaled to 0 replicas"
        return None
