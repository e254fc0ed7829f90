"""ExplainerFilter: an explainer model needs the alibi-explain capability."""

from __future__ import annotations

from modelplane.services.scheduler.policy.filters.explainer import ExplainerFilter
from tests.scheduler.policy.builders import replica, request


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
