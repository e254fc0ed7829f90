"""SharingServerFilter: a model pinned to a server (spec.server) goes only there."""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ServerView
from modelplane.services.scheduler.policy.base import PlacementRequest


class SharingServerFilter:
    name = "SharingServerFilter"

    def describe(self) -> str:
        return "a model with spec.server set is placed only on that server"

    def reject(self, request: PlacementRequest, server: ServerView) -> str | None:
        pinned = request.spec.server
        if pinned and pinned != server.name:
            return f"model is pinned to server {pinned}"
        return None
