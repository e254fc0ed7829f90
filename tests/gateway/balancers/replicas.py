"""Small helpers for policy tests: replicas named by letter, optional adapters."""

from __future__ import annotations

from modelplane.libs.routes import RouteEndpoint


def replica(name: str, *adapters: str) -> RouteEndpoint:
    """A replica called ``<name>.0`` (the policies only look at names, adapters and loads)."""
    return RouteEndpoint(name, 0, f"{name}:8080", f"{name}:8081", tuple(adapters))


def names(order: list[RouteEndpoint]) -> list[str]:
    return [e.server for e in order]
