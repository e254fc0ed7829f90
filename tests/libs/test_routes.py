"""Route records: the KV form the scheduler writes and the gateway reads."""

from __future__ import annotations

from modelplane.libs.resources.types import LoadBalancing, PrefixHashOptions
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


def test_load_balancing_and_adapters_survive_the_round_trip() -> None:
    """The model's loadBalancing and each endpoint's adapters reach the gateway unchanged."""
    endpoint = RouteEndpoint("vllm", 1, "h:1", "h:2", ("lora-a", "lora-b"))
    route = Route(
        "llm", (RouteVersion(1, "llm_1", (endpoint,)),), LoadBalancing("PrefixHash", PrefixHashOptions(150))
    )
    assert route_from_pb("llm", route_to_pb(route)) == route


def test_a_record_without_load_balancing_means_round_robin() -> None:
    """Routes written before the field existed read as the default policy."""
    msg = route_to_pb(_route("iris"))
    msg.ClearField("load_balancing")
    assert route_from_pb("iris", msg).load_balancing == LoadBalancing()


def test_timeout_survives_the_round_trip() -> None:
    """The model's own timeout reaches the gateway; 0 means the gateway's default."""
    route = Route("iris", (), timeout_seconds=1.5)
    assert route_from_pb("iris", route_to_pb(route)).timeout_seconds == 1.5
    assert route_from_pb("iris", route_to_pb(_route("iris"))).timeout_seconds == 0.0
