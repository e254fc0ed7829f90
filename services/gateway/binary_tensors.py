"""The binary tensor extension of the V2 REST protocol, for replicas that do not speak it.

The extension (Triton's ``binary_tensor_data``): an infer body is a JSON header followed by raw
tensor bytes; the ``Inference-Header-Content-Length`` HTTP header gives the JSON part's length.
An input whose ``parameters.binary_data_size`` is set has no ``data``: its bytes follow the JSON,
in input order. Outputs are asked as binary per output (``outputs[i].parameters.binary_data``)
or for all outputs at once (request ``parameters.binary_data_output``; a per-output
``binary_data`` overrides it); the response then has the same layout, each binary output
carrying ``parameters.binary_data_size`` instead of ``data``.

MLServer 1.7 does not implement the extension (tests/gateway/test_binary_tensors.py checks it),
so the gateway translates: ``decode_inputs`` moves binary inputs into JSON ``data`` before the
request goes to the replica, and ``encode_outputs`` turns the outputs the client asked as binary
back into the binary layout. Raw bytes are read through memoryviews (no slicing copies);
numeric tensors are little-endian, row-major; a ``BYTES`` element is a 4-byte little-endian
length then its bytes (carried as a UTF-8 string in JSON). BF16 has no JSON form and is refused.
The request's ``id`` and ``parameters`` are left as they are: replicas ignore what they do not
know, and the id comes back in the response.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from modelplane.libs.errors import InvalidError, PermanentError
from modelplane.libs.http1.messages import HttpRequest
from modelplane.services.gateway.validation import flat_data

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_CONTENT_TYPE = "application/octet-stream"

# Little-endian numpy dtypes of the V2 datatypes that have a binary form and a JSON form.
_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_BYTES_LENGTH = struct.Struct("<I")


def header_length(value: str | None, body_size: int) -> int | None:
    """The JSON part's length from the header value (None: the whole body is JSON)."""
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        length = -1
    if length < 0 or length > body_size:
        raise InvalidError(
            f"must be a byte count between 0 and the body size {body_size}, got {value!r}",
            field=HEADER_LENGTH,
        )
    return length


# ---- requests -----------------------------------------------------------------------------------
def _bytes_elements(raw: memoryview, field: str) -> list[str]:
    out: list[str] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidError("BYTES element length is cut off", field=field)
        (size,) = _BYTES_LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise InvalidError("BYTES element is longer than the tensor data", field=field)
        try:
            out.append(str(raw[offset : offset + size], "utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidError(
                "BYTES element is not UTF-8 and the model server only accepts JSON tensors", field=field
            ) from exc
        offset += size
    return out


def _tensor_data(raw: memoryview, datatype: Any, field: str) -> list[Any]:
    if datatype == "BYTES":
        return _bytes_elements(raw, field)
    dtype = _DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise InvalidError(f"datatype {datatype} cannot be sent to this model server as binary", field=field)
    if len(raw) % dtype.itemsize:
        raise InvalidError(f"{len(raw)} bytes is not a whole number of {datatype} values", field=field)
    values: list[Any] = np.frombuffer(raw, dtype=dtype).tolist()
    return values


def decode_inputs(request: dict[str, Any], raw: memoryview) -> bool:
    """Move the binary inputs' bytes into JSON ``data``, in place; False if there were none.

    ``raw`` is the body after the JSON part. ``parameters.binary_data_size`` is removed from
    each decoded input (its data is JSON now); every other field is kept.
    """
    offset = 0
    decoded = False
    for i, tensor in enumerate(request.get("inputs") or ()):
        parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
            continue
        field = f"inputs[{i}].parameters.binary_data_size"
        size = parameters["binary_data_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidError("must be a byte count", field=field)
        if offset + size > len(raw):
            raise InvalidError(
                f"asks {size} bytes at offset {offset}, the binary data holds {len(raw)}", field=field
            )
        tensor["data"] = _tensor_data(raw[offset : offset + size], tensor.get("datatype"), field)
        offset += size
        del parameters["binary_data_size"]
        if not parameters:
            del tensor["parameters"]
        decoded = True
    if offset != len(raw):
        raise InvalidError(
            f"{len(raw) - offset} bytes after the JSON header belong to no input", field="request body"
        )
    return decoded


def binary_output_choice(request: dict[str, Any]) -> Callable[[str], bool] | None:
    """Which outputs the client asked as binary: a predicate on the output name, None for none."""
    parameters = request.get("parameters")
    default = isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    explicit: dict[str, bool] = {}
    for output in request.get("outputs") or ():
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            continue
        out_params = output.get("parameters")
        if isinstance(out_params, dict) and isinstance(out_params.get("binary_data"), bool):
            explicit[output["name"]] = out_params["binary_data"]
    if not default and not any(explicit.values()):
        return None
    return lambda name: explicit.get(name, default)


# ---- responses ----------------------------------------------------------------------------------
def _encode(data: Any, datatype: Any, name: str) -> bytes:
    values = flat_data(data)
    if datatype == "BYTES":
        parts: list[bytes] = []
        for value in values:
            item = value.encode() if isinstance(value, str) else bytes(value)
            parts.append(_BYTES_LENGTH.pack(len(item)))
            parts.append(item)
        return b"".join(parts)
    dtype = _DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise PermanentError(f"output {name} has datatype {datatype}, which has no binary form here")
    return np.asarray(values, dtype=dtype).tobytes()


def encode_outputs(response: dict[str, Any], wanted: Callable[[str], bool]) -> tuple[bytes, int] | None:
    """The response in the binary layout (body, JSON length), None if no output is binary."""
    chunks: list[bytes] = []
    for output in response.get("outputs") or ():
        if not isinstance(output, dict) or "data" not in output or not wanted(str(output.get("name"))):
            continue
        raw = _encode(output.pop("data"), output.get("datatype"), str(output.get("name")))
        parameters = output.get("parameters")
        if not isinstance(parameters, dict):
            parameters = output["parameters"] = {}
        parameters["binary_data_size"] = len(raw)
        chunks.append(raw)
    if not chunks:
        return None
    header = orjson.dumps(response)
    return b"".join((header, *chunks)), len(header)


class BinaryRequest:
    """An infer request that uses the binary tensor extension, in the two forms a replica may get."""

    def __init__(
        self,
        request: HttpRequest,
        parsed: dict[str, Any],
        json_length: int | None,
        outputs: Callable[[str], bool] | None,
    ) -> None:
        self._request = request
        self._parsed = parsed
        self._json_length = json_length
        self.outputs = outputs
        self._translated: bytes | None = None

    def as_sent(self, forwarded: dict[str, str]) -> tuple[dict[str, str], bytes]:
        """Headers and body for a replica that speaks the extension: the client's own bytes."""
        if self._json_length is None:
            return forwarded, self._request.body
        headers = {**forwarded, HEADER_LENGTH.lower(): str(self._json_length)}
        content_type = self._request.headers.get("content-type")
        if content_type:
            headers["content-type"] = content_type
        return headers, self._request.body

    def translated(self) -> bytes:
        """The body as plain JSON, binary inputs moved into ``data`` (computed once)."""
        if self._translated is None:
            body = self._request.body
            if self._json_length is not None and decode_inputs(
                self._parsed, memoryview(body)[self._json_length :]
            ):
                body = orjson.dumps(self._parsed)
            self._translated = body
        return self._translated
