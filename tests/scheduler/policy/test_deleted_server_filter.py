"""DeletedServerFilter: servers scaled to zero or deleted take no models."""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ServerView
from modelplane.services.scheduler.policy.filters.deleted_server import DeletedServerFilter
from tests.scheduler.policy.builders import replica, request


def test_rejects_server_scaled_to_zero() -> None:
    """A server expecting 0 replicas (scaled to zero or being deleted) is rejected."""
    assert (
        DeletedServerFilter().reject(request(), ServerView("s", 0, (replica(),)))
        == "server is scaled to 0 replicas"
    )


def test_rejects_deleted_server_resource() -> None:
    """Replicas still reporting for a deleted Server resource take no models."""
    got = DeletedServerFilter().reject(request(), ServerView("s", 1, (replica(),), exists=False))
    assert got == "server resource is deleted"


def test_keeps_live_server() -> None:
    """A server that exists and expects replicas passes; the filter describes itself."""
    f = DeletedServerFilter()
    assert f.reject(request(), ServerView("s", 1)) is None
    assert f.name == "DeletedServerFilter"
    assert f.describe()
