"""ServerReplicaFilter: a server needs at least one connected replica that can take models."""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ServerView
from modelplane.services.scheduler.policy.base import PlacementRequest


class ServerReplicaFilter:
    name = "ServerReplicaFilter"

    def describe(self) -> str:
        return "the server has at least one connected replica that can take models"

    def reject(self, request: PlacementRequest, server: ServerView) -> str | None:
        if not server.replicas:
            return "waiting for server replicas to connect"
        if not server.summary.usable_count:
            reasons = sorted({r.unavailable_reason for r in server.replicas})
            return "no usable replica (" + "; ".join(reasons) + ")"
        return None
