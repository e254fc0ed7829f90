"""The in-memory route table, its resync semantics and version selection."""

from __future__ import annotations

from modelplane.libs.dataplane.routing import RouteTable, default_version, find_version
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion

EP = RouteEndpoint("mlserver", 0, "127.0.0.1:1", "127.0.0.1:2")


def _route(model: str) -> Route:
    return Route(model, (RouteVersion(2, f"{model}_2", (EP,)), RouteVersion(1, f"{model}_1", ())))


def test_first_version_is_default_and_versions_are_found_by_number() -> None:
    """versions[0] serves unversioned requests; find_version(n) finds by number or returns None."""
    route = _route("iris")
    default = default_version(route)
    assert default is not None
    assert default.version == 2
    found = find_version(route, 1)
    assert found is not None
    assert found.server_model_name == "iris_1"
    assert find_version(route, 3) is None


def test_resync_drops_models_missing_from_the_replay() -> None:
    """A model deleted while the watch was down disappears at the end of the next replay."""
    table = RouteTable()
    table.begin_sync()
    table.put(_route("a"))
    table.put(_route("b"))
    table.end_sync()
    assert table.synced
    assert table.models() == ["a", "b"]
    table.begin_sync()
    table.put(_route("b"))
    assert table.get("a") is not None  # still served during the replay
    table.end_sync()
    assert table.models() == ["b"]


def test_changes_after_sync_apply_directly() -> None:
    """After the replay, puts and deletes change the table at once."""
    table = RouteTable()
    table.begin_sync()
    table.end_sync()
    table.put(_route("a"))
    assert table.get("a") is not None
    table.delete("a")
    assert table.get("a") is None
    table.delete("never-there")
