"""Route records: the contract between the scheduler, which writes KV_ROUTES, and the gateway.

Design: the scheduler writes one ``state_pb2.ModelRoute`` per model (key = model name) listing
the versions that have ready replicas, newest first; the gateway watches the bucket and routes
requests from an in-memory copy. Both sides use these frozen dataclasses and the one to/from pair
below, so the record cannot drift between writer and reader. Selecting a version or a replica is
the gateway's business and lives there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelplane.libs.resources.convert import load_balancing_from_pb, load_balancing_to_pb
from modelplane.libs.resources.types import LoadBalancing
from modelplane.proto import state_pb2


@dataclass(frozen=True, slots=True)
class RouteEndpoint:
    """One replica that holds a model version."""

    server: str
    index: int
    # host:port of the replica's V2 REST and gRPC servers.
    http_endpoint: str
    grpc_endpoint: str
    # LoRA adapters the replica serves for this version (balancers skip replicas lacking one).
    adapters: tuple[str, ...] = ()

    @property
    def replica(self) -> str:
        """The replica's name, ``<server>.<index>``."""
        return f"{self.server}.{self.index}"


@dataclass(frozen=True, slots=True)
class RouteVersion:
    """One version of a model and where it is loaded."""

    version: int
    # The name the model server knows this version by, e.g. "iris_1".
    server_model_name: str
    endpoints: tuple[RouteEndpoint, ...]


@dataclass(frozen=True, slots=True)
class Route:
    """Where a model's traffic goes; ``versions[0]`` serves requests without a version."""

    model: str
    versions: tuple[RouteVersion, ...] = ()
    # The Model's spec.loadBalancing: which policy the gateway uses for it.
    load_balancing: LoadBalancing = field(default_factory=LoadBalancing)
    # The Model's spec.timeoutSeconds (0 = the gateway's default).
    timeout_seconds: float = 0.0


def route_to_pb(route: Route) -> state_pb2.ModelRoute:
    """The KV record of ``route``."""
    return state_pb2.ModelRoute(
        model=route.model,
        versions=[
            state_pb2.RouteVersion(
                version=v.version,
                server_model_name=v.server_model_name,
                endpoints=[
                    state_pb2.RouteEndpoint(
                        server=e.server,
                        index=e.index,
                        http_endpoint=e.http_endpoint,
                        grpc_endpoint=e.grpc_endpoint,
                        adapters=list(e.adapters),
                    )
                    for e in v.endpoints
                ],
            )
            for v in route.versions
        ],
        load_balancing=load_balancing_to_pb(route.load_balancing),
        timeout_seconds=route.timeout_seconds,
    )


def route_from_pb(key: str, msg: state_pb2.ModelRoute) -> Route:
    """A ``ModelRoute`` read from KV; the key is the model name (``msg.model`` may be unset)."""
    return Route(
        model=msg.model or key,
        versions=tuple(
            RouteVersion(
                version=v.version,
                server_model_name=v.server_model_name,
                endpoints=tuple(
                    RouteEndpoint(
                        server=e.server,
                        index=e.index,
                        http_endpoint=e.http_endpoint,
                        grpc_endpoint=e.grpc_endpoint,
                        adapters=tuple(e.adapters),
                    )
                    for e in v.endpoints
                ),
            )
            for v in msg.versions
        ),
        load_balancing=load_balancing_from_pb(msg.load_balancing),
        timeout_seconds=msg.timeout_seconds,
    )
