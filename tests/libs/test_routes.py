"""Route records: the KV form the scheduler writes and the gateway reads."""

from __future__ import annotations

from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion, route_from_pb, route_to_pb

EP = RouteEndpoint("mlserver", 0, "127.0.0.1:1", "127.0.0.1:2")


def _route(model: str) -> Route:
    return Route(model, (RouteVersion(2, f"{model}_2", (EP,)), RouteVersion(1, f"{model}_1", ())))


def test_proto_round_trip_keeps_every_field() -> None:
    """route_to_pb and route_from_pb are inverses."""
    route = _route("iris")
    assert route_from_pb("iris", route_to_pb(route)) == route


def test_model_name_falls_back_to_the_key() -> None:
    """A record without its model field is named by its KV key."""
    msg = route_to_pb(_route("iris"))
    msg.model = ""
    assert route_from_pb("iris", msg).model == "iris"


def test_endpoint_names_its_replica() -> None:
    """An endpoint's replica name is ``<server>.<index>``, as the scheduler keys replicas."""
    assert EP.replica == "mlserver.0"
