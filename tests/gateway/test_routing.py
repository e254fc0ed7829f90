"""The in-memory route table and its resync semantics."""

from __future__ import annotations

from modelplane.services.gateway.converters import route_from_proto, route_to_proto
from modelplane.services.gateway.routing import Endpoint, Route, RouteTable, RouteVersion

EP = Endpoint("mlserver", 0, "127.0.0.1:1", "127.0.0.1:2")


def _route(model: str) -> Route:
    return Route(model, (RouteVersion(2, f"{model}_2", (EP,)), RouteVersion(1, f"{model}_1", ())))


def test_first_version_is_default_and_versions_are_found_by_number() -> None:
    """versions[0] serves unversioned requests; version(n) finds by number or returns None."""
    route = _route("iris")
    assert route.default is not None
    assert route.default.version == 2
    found = route.version(1)
    assert found is not None
    assert found.server_model_name == "iris_1"
    assert route.version(3) is None


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


def test_proto_round_trip_keeps_every_field() -> None:
    """route_to_proto and route_from_proto are inverses."""
    route = _route("iris")
    assert route_from_proto("iris", route_to_proto(route)) == route


def test_model_name_falls_back_to_the_key() -> None:
    """A record without its model field is named by its KV key."""
    msg = route_to_proto(_route("iris"))
    msg.model = ""
    assert route_from_proto("iris", msg).model == "iris"
