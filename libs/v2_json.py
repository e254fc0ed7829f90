"""Open Inference Protocol (V2) requests and responses: JSON dicts <-> gRPC protobuf messages.

The dataflow runs pipelines and graphs on V2 JSON dicts; the gateway's gRPC path converts at the
edge with these four functions: ``request_from_pb``, ``request_to_pb``, ``response_from_pb``,
``response_to_pb``.

Tensors. JSON ``data`` is flat (nested lists are flattened, row-major) and must hold exactly
``prod(shape)`` elements. Protobuf tensors carry typed contents or raw bytes:

- typed: BOOL -> ``bool_contents``; INT8/16/32 -> ``int_contents``; INT64 -> ``int64_contents``;
  UINT8/16/32 -> ``uint_contents``; UINT64 -> ``uint64_contents``; FP32 -> ``fp32_contents``;
  FP64 -> ``fp64_contents``; BYTES -> ``bytes_contents``. FP16 has no typed field.
- raw (``raw_input_contents`` / ``raw_output_contents``, one entry per tensor, in order, all or
  none): little-endian values, BOOL one byte each, BYTES each element a 4-byte little-endian
  length then its bytes.

Reading protobuf accepts both. Writing uses typed contents unless asked for raw, or unless a
tensor is FP16: then every tensor of the message is raw, since the protocol allows raw contents
only for all tensors or none.

BYTES. JSON carries text, protobuf bytes. Elements are UTF-8 encoded on the way to protobuf. On
the way back a tensor whose elements are all valid UTF-8 becomes strings; one that is not becomes
base64 text with the tensor parameter ``content_type: "base64"``, which is MLServer's base64
codec convention in JSON and in protobuf alike (the model decodes it to the original bytes), so
such a tensor goes back to protobuf as that base64 text with the parameter. JSON -> protobuf ->
JSON is exact; protobuf -> JSON -> protobuf is exact for UTF-8 elements.

Parameters. ``InferParameter`` carries bool, int64 and string (and double/uint64 where the
protocol file defines them, as KServe's does). A JSON float where the message has no
``double_param`` is sent as its decimal text in ``string_param``; an integer beyond int64 goes to
``uint64_param`` when there is one; a JSON object or array is sent as JSON text; null is left out.

Bad tensors (unknown datatype, a negative dimension, data count != shape product, a value of the
wrong type or out of range, raw bytes of the wrong length) raise ``InvalidError`` naming the
tensor and the field.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from google.protobuf.message import Message

from modelplane.libs.errors import InvalidError
from modelplane.proto import open_inference_pb2 as oip

__all__ = ["DATATYPES", "request_from_pb", "request_to_pb", "response_from_pb", "response_to_pb"]

CONTENT_TYPE = "content_type"
BASE64 = "base64"


@dataclass(frozen=True, slots=True)
class _Type:
    contents: str | None  # the typed field of InferTensorContents; None: raw only
    dtype: np.dtype[Any] | None  # little-endian raw layout; None: BYTES
    kind: str  # "bool", "int", "float", "bytes"
    low: int = 0
    high: int = 0


def _int(contents: str, code: str, bits: int, signed: bool) -> _Type:
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return _Type(contents, np.dtype(code), "int", low, high)


DATATYPES: dict[str, _Type] = {
    "BOOL": _Type("bool_contents", np.dtype("?"), "bool"),
    "INT8": _int("int_contents", "<i1", 8, True),
    "INT16": _int("int_contents", "<i2", 16, True),
    "INT32": _int("int_contents", "<i4", 32, True),
    "INT64": _int("int64_contents", "<i8", 64, True),
    "UINT8": _int("uint_contents", "<u1", 8, False),
    "UINT16": _int("uint_contents", "<u2", 16, False),
    "UINT32": _int("uint_contents", "<u4", 32, False),
    "UINT64": _int("uint64_contents", "<u8", 64, False),
    "FP16": _Type(None, np.dtype("<f2"), "float"),
    "FP32": _Type("fp32_contents", np.dtype("<f4"), "float"),
    "FP64": _Type("fp64_contents", np.dtype("<f8"), "float"),
    "BYTES": _Type("bytes_contents", None, "bytes"),
}
_LENGTH = struct.Struct("<I")
_PARAM_FIELDS = set(oip.InferParameter.DESCRIPTOR.fields_by_name)
_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT64_MAX = (1 << 64) - 1


# ---- requests -----------------------------------------------------------------------------------
def request_from_pb(request: oip.ModelInferRequest) -> dict[str, Any]:
    """The V2 JSON request of a gRPC ``ModelInferRequest`` (the model name stays with the caller)."""
    out: dict[str, Any] = {}
    if request.id:
        out["id"] = request.id
    if request.parameters:
        out["parameters"] = _params_from_pb(request.parameters)
    raw = _raw_for(request.raw_input_contents, len(request.inputs), "raw_input_contents")
    out["inputs"] = [
        _tensor_from_pb(tensor, raw[index] if raw else None, f"inputs[{index}]")
        for index, tensor in enumerate(request.inputs)
    ]
    if request.outputs:
        outputs: list[dict[str, Any]] = []
        for wanted in request.outputs:
            item: dict[str, Any] = {"name": wanted.name}
            if wanted.parameters:
                item["parameters"] = _params_from_pb(wanted.parameters)
            outputs.append(item)
        out["outputs"] = outputs
    return out


def request_to_pb(
    request: Mapping[str, Any], *, model_name: str = "", model_version: str = "", raw: bool = False
) -> oip.ModelInferRequest:
    """A gRPC ``ModelInferRequest`` from a V2 JSON request; ``raw`` writes raw input contents."""
    message = oip.ModelInferRequest(model_name=model_name, model_version=model_version)
    _top_level_to_pb(message, request)
    inputs = _tensor_list(request.get("inputs"), "inputs")
    raw = raw or _any_raw_only(inputs)
    for index, tensor in enumerate(inputs):
        encoded = _tensor_to_pb(message.inputs.add(), tensor, f"inputs[{index}]", raw)
        if raw:
            message.raw_input_contents.append(encoded)
    outputs = request.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            raise InvalidError("must be a list of {name, parameters?}", field="outputs")
        for index, wanted in enumerate(outputs):
            where = f"outputs[{index}]"
            if not isinstance(wanted, Mapping) or not isinstance(wanted.get("name"), str):
                raise InvalidError("must be an object with a string name", field=where)
            item = message.outputs.add(name=wanted["name"])
            _params_to_pb(item.parameters, wanted.get("parameters"), f"{where}.parameters")
    return message


# ---- responses ----------------------------------------------------------------------------------
def response_from_pb(response: oip.ModelInferResponse) -> dict[str, Any]:
    """The V2 JSON response of a gRPC ``ModelInferResponse``."""
    out: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version:
        out["model_version"] = response.model_version
    out["id"] = response.id
    if response.parameters:
        out["parameters"] = _params_from_pb(response.parameters)
    raw = _raw_for(response.raw_output_contents, len(response.outputs), "raw_output_contents")
    out["outputs"] = [
        _tensor_from_pb(tensor, raw[index] if raw else None, f"outputs[{index}]")
        for index, tensor in enumerate(response.outputs)
    ]
    return out


def response_to_pb(response: Mapping[str, Any], *, raw: bool = False) -> oip.ModelInferResponse:
    """A gRPC ``ModelInferResponse`` from a V2 JSON response; ``raw`` writes raw output contents."""
    message = oip.ModelInferResponse()
    for key in ("model_name", "model_version"):
        value = response.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise InvalidError(f"must be a string, got {type(value).__name__}", field=key)
            setattr(message, key, value)
    _top_level_to_pb(message, response)
    outputs = _tensor_list(response.get("outputs"), "outputs")
    raw = raw or _any_raw_only(outputs)
    for index, tensor in enumerate(outputs):
        encoded = _tensor_to_pb(message.outputs.add(), tensor, f"outputs[{index}]", raw)
        if raw:
            message.raw_output_contents.append(encoded)
    return message


# ---- shared parts -------------------------------------------------------------------------------
def _top_level_to_pb(message: Any, body: Mapping[str, Any]) -> None:
    if not isinstance(body, Mapping):
        raise InvalidError(f"the body must be a JSON object, got {type(body).__name__}")
    identifier = body.get("id")
    if identifier is not None:
        if not isinstance(identifier, str):
            raise InvalidError(f"must be a string, got {type(identifier).__name__}", field="id")
        message.id = identifier
    _params_to_pb(message.parameters, body.get("parameters"), "parameters")


def _tensor_list(tensors: Any, field: str) -> list[Mapping[str, Any]]:
    if tensors is None:
        return []
    if not isinstance(tensors, list) or not all(isinstance(t, Mapping) for t in tensors):
        raise InvalidError("must be a list of tensor objects", field=field)
    return tensors


def _any_raw_only(tensors: Iterable[Mapping[str, Any]]) -> bool:
    return any(tensor.get("datatype") == "FP16" for tensor in tensors)


def _raw_for(raw: Sequence[bytes], count: int, field: str) -> Sequence[bytes] | None:
    if not raw:
        return None
    if len(raw) != count:
        raise InvalidError(
            f"has {len(raw)} entries for {count} tensors; it needs one per tensor", field=field
        )
    return raw


def _shape_count(shape: Iterable[int]) -> int:
    return math.prod(shape)


# ---- tensors: protobuf -> JSON ------------------------------------------------------------------
def _tensor_from_pb(tensor: Any, raw: bytes | None, where: str) -> dict[str, Any]:
    name = tensor.name
    datatype = tensor.datatype
    kind = DATATYPES.get(datatype)
    if kind is None:
        raise _bad(
            name, where, f"has unknown datatype {datatype!r} (known: {', '.join(DATATYPES)})", "datatype"
        )
    shape = list(tensor.shape)
    if any(size < 0 for size in shape):
        raise _bad(name, where, f"has a negative dimension in shape {shape}", "shape")
    count = _shape_count(shape)
    parameters = _params_from_pb(tensor.parameters) if tensor.parameters else {}
    if raw is not None:
        data = _raw_decode(raw, kind, count, name, where)
    elif kind.contents is None:
        if count:
            raise _bad(name, where, f"is {datatype}, which only raw contents can carry", "contents")
        data = []
    else:
        data = list(getattr(tensor.contents, kind.contents))
        if len(data) != count:
            raise _bad(
                name,
                where,
                f"has {len(data)} values in {kind.contents}; shape {shape} needs {count}",
                "contents",
            )
    if kind.kind == "bytes":
        data, encoded = _bytes_to_json(data)
        if encoded:
            parameters[CONTENT_TYPE] = BASE64
    out: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape, "data": data}
    if parameters:
        out["parameters"] = parameters
    return out


def _raw_decode(raw: bytes, kind: _Type, count: int, name: str, where: str) -> list[Any]:
    if kind.dtype is None:
        elements: list[bytes] = []
        offset = 0
        view = memoryview(raw)
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise _bad(name, where, "has a BYTES element whose length is cut off", "raw")
            (size,) = _LENGTH.unpack_from(view, offset)
            offset += 4
            if offset + size > len(raw):
                raise _bad(name, where, "has a BYTES element longer than its raw contents", "raw")
            elements.append(bytes(view[offset : offset + size]))
            offset += size
        if len(elements) != count:
            raise _bad(name, where, f"has {len(elements)} BYTES elements; its shape needs {count}", "raw")
        return elements
    expected = count * kind.dtype.itemsize
    if len(raw) != expected:
        raise _bad(
            name,
            where,
            f"has {len(raw)} raw bytes; {count} values of its datatype need {expected}",
            "raw",
        )
    values: list[Any] = np.frombuffer(raw, dtype=kind.dtype).tolist()
    return values


def _bytes_to_json(elements: list[bytes]) -> tuple[list[str], bool]:
    """Text when every element is UTF-8, else base64 of each (and True)."""
    try:
        return [element.decode("utf-8") for element in elements], False
    except UnicodeDecodeError:
        return [base64.b64encode(element).decode("ascii") for element in elements], True


# ---- tensors: JSON -> protobuf ------------------------------------------------------------------
def _tensor_to_pb(message: Any, tensor: Mapping[str, Any], where: str, raw: bool) -> bytes:
    """Fill ``message`` from ``tensor``; the raw bytes when ``raw`` (else b"")."""
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidError("a tensor needs a non-empty string name", field=f"{where}.name")
    datatype = tensor.get("datatype")
    kind = DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if kind is None or not isinstance(datatype, str):
        raise _bad(
            name, where, f"has unknown datatype {datatype!r} (known: {', '.join(DATATYPES)})", "datatype"
        )
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not all(isinstance(size, int) and not isinstance(size, bool) for size in shape)
        or any(size < 0 for size in shape)
    ):
        raise _bad(name, where, f"needs a shape of non-negative integers, got {shape!r}", "shape")
    data = _flat(tensor.get("data"), name, where)
    count = _shape_count(shape)
    if len(data) != count:
        raise _bad(name, where, f"has {len(data)} values; shape {shape} needs {count}", "data")
    values = _checked(data, kind, datatype, name, where)
    message.name = name
    message.datatype = datatype
    message.shape.extend(shape)
    _params_to_pb(message.parameters, tensor.get("parameters"), f"{where}.parameters")
    if raw:
        return _raw_encode(values, kind)
    assert kind.contents is not None  # FP16 always goes raw
    getattr(message.contents, kind.contents).extend(values)
    return b""


def _flat(data: Any, name: str, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise _bad(name, where, f"needs data as a list, got {type(data).__name__}", "data")
    if not any(isinstance(item, list) for item in data):
        return data
    out: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _checked(data: list[Any], kind: _Type, datatype: str, name: str, where: str) -> list[Any]:
    """The values as protobuf takes them, each checked against the datatype."""
    if kind.kind == "bytes":
        out_bytes: list[bytes] = []
        for item in data:
            if not isinstance(item, str):
                raise _bad(name, where, f"is BYTES and needs strings, got {item!r}", "data")
            out_bytes.append(item.encode("utf-8"))
        return out_bytes
    if kind.kind == "bool":
        out_bool: list[bool] = []
        for item in data:
            if isinstance(item, bool):
                out_bool.append(item)
            elif isinstance(item, int) and item in (0, 1):
                out_bool.append(bool(item))
            else:
                raise _bad(name, where, f"is BOOL and needs true/false, got {item!r}", "data")
        return out_bool
    if kind.kind == "int":
        for item in data:
            if not isinstance(item, int) or isinstance(item, bool):
                raise _bad(name, where, f"is {datatype} and needs integers, got {item!r}", "data")
            if not kind.low <= item <= kind.high:
                raise _bad(
                    name, where, f"has {item}, outside the {datatype} range {kind.low}..{kind.high}", "data"
                )
        return data
    for item in data:
        if not isinstance(item, int | float) or isinstance(item, bool):
            raise _bad(name, where, f"is {datatype} and needs numbers, got {item!r}", "data")
    return data


def _raw_encode(values: list[Any], kind: _Type) -> bytes:
    if kind.dtype is None:
        return b"".join(_LENGTH.pack(len(item)) + item for item in values)
    return np.asarray(values, dtype=kind.dtype).tobytes()


def _bad(name: str, where: str, message: str, part: str) -> InvalidError:
    return InvalidError(f"tensor {name!r} {message}", field=f"{where}.{part}")


# ---- parameters ---------------------------------------------------------------------------------
def _params_from_pb(parameters: Mapping[str, oip.InferParameter]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:
            out[key] = getattr(parameter, choice)
    return out


def _params_to_pb(target: Any, parameters: Any, field: str) -> None:
    if parameters is None:
        return
    if not isinstance(parameters, Mapping):
        raise InvalidError(f"must be an object, got {type(parameters).__name__}", field=field)
    for key, value in parameters.items():
        if value is None:
            continue
        _param_to_pb(target[key], value, f"{field}.{key}")


def _param_to_pb(parameter: Message, value: Any, field: str) -> None:
    if isinstance(value, bool):
        parameter.bool_param = value  # type: ignore[attr-defined]
    elif isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            parameter.int64_param = value  # type: ignore[attr-defined]
        elif 0 <= value <= _UINT64_MAX and "uint64_param" in _PARAM_FIELDS:
            setattr(parameter, "uint64_param", value)  # noqa: B010 (only in some protocol files)
        else:
            raise InvalidError(f"the integer {value} does not fit a parameter", field=field)
    elif isinstance(value, float):
        if "double_param" in _PARAM_FIELDS:
            setattr(parameter, "double_param", value)  # noqa: B010 (only in some protocol files)
        else:
            parameter.string_param = repr(value)  # type: ignore[attr-defined]
    elif isinstance(value, str):
        parameter.string_param = value  # type: ignore[attr-defined]
    else:
        parameter.string_param = orjson.dumps(value).decode()  # type: ignore[attr-defined]
