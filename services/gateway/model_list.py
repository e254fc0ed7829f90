"""The models the gateway can route to, for ``GET /v2/models``.

The Open Inference Protocol has no list call; KServe's V2 server answers ``GET /v2/models`` with
``{"models": [<name>, ...]}`` and Triton/MLServer list a repository with
``POST /v2/repository/index`` as ``[{"name", "version", "state", "reason"}]``. The gateway's
answer keeps KServe's top-level key and gives each model what clients ask next:

    {"models": [{"name": "iris", "versions": ["2", "1"], "ready": true,
                 "ready_versions": ["2"]}, ...]}

``versions`` are the route's versions as strings (as in V2 model metadata), the one serving
requests without a version first; ``ready`` says whether that default version has a replica;
``ready_versions`` lists the versions with at least one replica. Models are sorted by name. The
list is read from the in-memory route table: no replica is asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelplane.libs.dataplane.routing import RouteTable, default_version


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """One routable model as ``GET /v2/models`` shows it."""

    name: str
    versions: tuple[str, ...]
    ready: bool
    ready_versions: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": list(self.versions),
            "ready": self.ready,
            "ready_versions": list(self.ready_versions),
        }


def list_models(routes: RouteTable) -> list[ModelSummary]:
    """Every model of the route table with its versions and readiness, by name."""
    summaries: list[ModelSummary] = []
    for name in routes.models():
        route = routes.get(name)
        if route is None:  # pragma: no cover - models() and get() read the same dict
            continue
        default = default_version(route)
        summaries.append(
            ModelSummary(
                name=name,
                versions=tuple(str(v.version) for v in route.versions),
                ready=default is not None and bool(default.endpoints),
                ready_versions=tuple(str(v.version) for v in route.versions if v.endpoints),
            )
        )
    return summaries
