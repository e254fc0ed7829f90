"""VersionServerFilter: all replicas of one model version live on one server.

Rescaling a version that already has live replicas stays on their server; moving to another
server takes a new version (or the loss of every replica it had).
"""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ServerView
from modelplane.services.scheduler.policy.base import PlacementRequest


class VersionServerFilter:
    name = "VersionServerFilter"

    def describe(self) -> str:
        return "a version with live replicas stays on the server that holds them"

    def reject(self, request: PlacementRequest, server: ServerView) -> str | None:
        if request.current_server and request.current_server != server.name:
            return f"version {request.version} already runs on server {request.current_server}"
        return None
