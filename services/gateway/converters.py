"""Protobuf <-> gateway types: KV route records and the parts of gRPC requests the handler checks."""

from __future__ import annotations

from modelplane.libs.proto import open_inference_pb2 as oip
from modelplane.libs.proto import state_pb2
from modelplane.services.gateway.routing import Endpoint, Route, RouteVersion
from modelplane.services.gateway.validation import InputHeader


def route_from_proto(key: str, msg: state_pb2.ModelRoute) -> Route:
    """A ``ModelRoute`` read from KV; the key is the model name (``msg.model`` may be unset)."""
    return Route(
        model=msg.model or key,
        versions=tuple(
            RouteVersion(
                version=v.version,
                server_model_name=v.server_model_name,
                endpoints=tuple(
                    Endpoint(server=e.server, index=e.index, http=e.http_endpoint, grpc=e.grpc_endpoint)
                    for e in v.endpoints
                ),
            )
            for v in msg.versions
        ),
    )


def route_to_proto(route: Route) -> state_pb2.ModelRoute:
    """The KV record of ``route`` (used by tests and tools that write routes)."""
    return state_pb2.ModelRoute(
        model=route.model,
        versions=[
            state_pb2.RouteVersion(
                version=v.version,
                server_model_name=v.server_model_name,
                endpoints=[
                    state_pb2.RouteEndpoint(
                        server=e.server, index=e.index, http_endpoint=e.http, grpc_endpoint=e.grpc
                    )
                    for e in v.endpoints
                ],
            )
            for v in route.versions
        ],
    )


def input_headers_from_proto(request: oip.ModelInferRequest) -> list[InputHeader]:
    """Name and datatype of each input tensor (empty proto strings read as missing)."""
    return [InputHeader(name=t.name or None, datatype=t.datatype or None) for t in request.inputs]
