"""Cheap checks of V2 inference requests before they are forwarded.

Design: the replica validates fully; the gateway only rejects requests that are certainly wrong
(not JSON, no inputs, an input missing a required field) so the client gets a message naming the
field instead of a replica round trip and an opaque error. Tensor contents are not inspected.
With the binary tensor extension only the JSON header (the first Inference-Header-Content-Length
bytes) is parsed, and an input may carry ``parameters.binary_data_size`` instead of ``data``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from modelplane.libs.errors import InvalidError

# Fields every V2 JSON input tensor must carry (Open Inference Protocol, "$request_input").
REQUIRED_JSON_INPUT_FIELDS = ("name", "shape", "datatype", "data")


@dataclass(frozen=True, slots=True)
class InputHeader:
    """What the gateway checks of one input tensor, whatever the transport."""

    name: str | None
    datatype: str | None


def _has_binary_data(tensor: dict[str, Any]) -> bool:
    parameters = tensor.get("parameters")
    return isinstance(parameters, dict) and parameters.get("binary_data_size") is not None


def load_json_object(body: bytes | memoryview) -> dict[str, Any]:
    """A request body that must be one JSON object; InvalidError on ``request body`` otherwise."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidError(f"invalid JSON ({exc})", field="request body") from exc
    if not isinstance(parsed, dict):
        raise InvalidError("must be a JSON object", field="request body")
    return parsed


def flat_data(data: Any) -> list[Any]:
    """V2 JSON ``data`` may be flat or nested row-major: always flat here."""
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(item, list) for item in data):
        return data
    out: list[Any] = []
    for item in data:
        out.extend(flat_data(item))
    return out


def validate_infer_json(body: bytes, header_length: int | None = None) -> dict[str, Any]:
    """Parse a REST infer body's JSON and check its shape; InvalidError names the offending field.

    ``header_length`` is the binary extension's JSON length: only that prefix is parsed (through
    a memoryview, so the tensor bytes after it are not copied).
    """
    parsed = load_json_object(body if header_length is None else memoryview(body)[:header_length])
    inputs = parsed.get("inputs")
    if inputs is None:
        raise InvalidError("is required", field="inputs")
    if not isinstance(inputs, list):
        raise InvalidError("must be a list", field="inputs")
    if not inputs:
        raise InvalidError("must not be empty", field="inputs")
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise InvalidError("must be an object", field=f"inputs[{i}]")
        binary = _has_binary_data(tensor)
        if binary and header_length is None:
            raise InvalidError(
                "needs the Inference-Header-Content-Length header",
                field=f"inputs[{i}].parameters.binary_data_size",
            )
        for name in REQUIRED_JSON_INPUT_FIELDS:
            if tensor.get(name) is None and not (name == "data" and binary):
                raise InvalidError("is required", field=f"inputs[{i}].{name}")
        if not isinstance(tensor["name"], str) or not tensor["name"]:
            raise InvalidError("must be a non-empty string", field=f"inputs[{i}].name")
        if not isinstance(tensor["datatype"], str):
            raise InvalidError("must be a string", field=f"inputs[{i}].datatype")
        if not isinstance(tensor["shape"], list):
            raise InvalidError("must be a list of integers", field=f"inputs[{i}].shape")
    return parsed


def validate_inputs(inputs: Sequence[InputHeader]) -> None:
    """Check inputs taken from a gRPC request: at least one, each with a name and datatype."""
    if not inputs:
        raise InvalidError("must not be empty", field="inputs")
    for i, tensor in enumerate(inputs):
        if not tensor.name:
            raise InvalidError("is required", field=f"inputs[{i}].name")
        if not tensor.datatype:
            raise InvalidError("is required", field=f"inputs[{i}].datatype")
