"""ServerRequirementFilter: every model requirement (trimmed) is a capability of the server.

A server's capabilities are those every usable replica offers (trimmed): replicas of one Server
share a ServerConfig, and while they disagree (a capability change rolling out) the server only
promises what all of them have, so any replica placement picks can run the model.
"""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ServerView
from modelplane.services.scheduler.policy.base import PlacementRequest, replicas_word


class ServerRequirementFilter:
    name = "ServerRequirementFilter"

    def describe(self) -> str:
        return "every model requirement is a capability of every usable replica of the server"

    def reject(self, request: PlacementRequest, server: ServerView) -> str | None:
        wanted = request.requirement_set
        if not wanted or wanted <= server.capabilities:
            return None
        missing = sorted(wanted - server.capabilities)
        word = "capability" if len(missing) == 1 else "capabilities"
        usable = [r for r in server.replicas if not r.unavailable_reason]
        lacking = [r for r in usable if not wanted <= r.capability_set]
        if len(lacking) == len(usable):
            return f"missing {word} {', '.join(missing)}"
        total = len(usable)
        return f"{word} {', '.join(missing)} missing on {len(lacking)} of {total} {replicas_word(total)}"
