"""Protobuf <-> gateway types: the parts of gRPC requests the handler checks.

KV route records are converted by ``modelplane.libs.routes`` (shared with the scheduler).
"""

from __future__ import annotations

from modelplane.proto import open_inference_pb2 as oip
from modelplane.services.gateway.validation import InputHeader


def input_headers_from_proto(request: oip.ModelInferRequest) -> list[InputHeader]:
    """Name and datatype of each input tensor (empty proto strings read as missing)."""
    return [InputHeader(name=t.name or None, datatype=t.datatype or None) for t in request.inputs]
