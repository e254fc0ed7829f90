"""SharingServerFilter: a model pinned with spec.server goes only to that server."""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ServerView
from modelplane.services.scheduler.policy.filters.sharing import SharingServerFilter
from tests.scheduler.policy.builders import request


def test_pinned_model_rejects_other_servers() -> None:
    """A pinned model rejects every other server and names the pin."""
    assert (
        SharingServerFilter().reject(request(server="a"), ServerView("b", 1)) == "model is pinned to server a"
    )


def test_pinned_model_keeps_its_server() -> None:
    """A pinned model keeps the server it is pinned to."""
    assert SharingServerFilter().reject(request(server="a"), ServerView("a", 1)) is None


def test_unpinned_model_keeps_every_server() -> None:
    """A model without spec.server may go anywhere; the filter describes itself."""
    f = SharingServerFilter()
    assert f.reject(request(), ServerView("b", 1)) is None
    assert f.name == "SharingServerFilter"
    assert f.describe()
