"""VersionServerFilter: all replicas of one model version live on one server."""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ServerView
from modelplane.services.scheduler.policy.filters.version_server import VersionServerFilter
from tests.scheduler.policy.builders import request


def test_version_with_live_replicas_stays_on_its_server() -> None:
    """A version already running on server a rejects server b and says why."""
    got = VersionServerFilter().reject(request(current_server="a"), ServerView("b", 1))
    assert got == "version 1 already runs on server a"


def test_keeps_the_current_server_and_any_server_for_a_new_version() -> None:
    """The current server passes; a version without live replicas may go anywhere."""
    f = VersionServerFilter()
    assert f.reject(request(current_server="a"), ServerView("a", 1)) is None
    assert f.reject(request(), ServerView("b", 1)) is None
    assert f.describe()
