"""ExplainerFilter: an explainer model needs the alibi-explain capability."""

from __future__ import annotations

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView
from modelplane.services.scheduler.policy.base import PlacementRequest
from modelplane.services.scheduler.policy.filters.explainer import ExplainerFilter

MI = 1 << 20


def request(current_server: str = "", **spec: object) -> PlacementRequest:
    return PlacementRequest("iris", 1, ModelSpec(storage_uri="file:///m", **spec), current_server)  # type: ignore[arg-type]


def replica(index: int = 0, **fields: object) -> ReplicaView:
    values: dict[str, object] = {
        "server": "s",
        "index": index,
        "capabilities": ("sklearn",),
        "memory_bytes": 100 * MI,
    }
    values.update(fields)
    return ReplicaView(**values)  # type: ignore[arg-type]


def test_ordinary_model_needs_nothing() -> None:
    """A model that explains nothing passes any replica."""
    assert ExplainerFilter().accepts(request(), replica())


def test_explainer_needs_alibi_explain() -> None:
    """An explainer passes only replicas offering alibi-explain (trimmed)."""
    f = ExplainerFilter()
    assert not f.accepts(request(explainer_for="iris"), replica())
    assert f.accepts(request(explainer_for="iris"), replica(capabilities=(" alibi-explain",)))


def test_explanation() -> None:
    """The explanation names the capability."""
    f = ExplainerFilter()
    assert (
        f.explain(request(explainer_for="iris"), [replica()], 0, 1)
        == "missing capability alibi-explain for an explainer"
    )
    assert (
        f.explain(request(explainer_for="iris"), [replica()], 1, 2) == "1 of 2 replicas offer alibi-explain"
    )
