"""Seldon Core v1's prediction protocol <-> Open Inference Protocol v2 infer, as plain data.

``POST /api/v1.0/predictions`` carries a SeldonMessage (Seldon Core v1 ``proto/prediction.proto``
as JSON). The replicas speak V2 only, so the message becomes ONE V2 input tensor, named after
the model's only input (its V2 metadata; ``input-0`` otherwise), as KServe V1 does:

- ``{"data": {"ndarray": rows}}``: the rows as a tensor by row_tensors.py's rules (shape
  ``[len(rows), *row shape]``, datatype from the scalars, ragged rows refused naming
  ``data.ndarray[i]``);
- ``{"data": {"tensor": {"shape": [...], "values": [...]}}}``: that shape and ``FP64`` (the
  proto's values are doubles); the values must be numbers and as many as the shape holds;
- ``{"strData": "..."}``: a ``BYTES`` tensor of shape ``[1]`` with MLServer's ``str`` content
  type (what a text model such as MLServer's HuggingFace runtime takes);
- ``jsonData``, ``binData`` and ``data.tftensor`` are refused (400 naming the field): V2 tensors
  have no faithful form for arbitrary JSON, and the binary forms would need model-specific
  decoding the gateway cannot guess. ``data.names`` (column names) is accepted and not sent on:
  Seldon's own prepackaged servers ignored it too.

The body may also come form-encoded as ``json=<message>`` (or as a ``json`` query parameter),
as Seldon's Python wrapper accepted it and ``SeldonClient``'s microservice calls send it.

The V2 answer's FIRST output becomes the answer's data (what Seldon's Python wrapper built from
the model's return value): ``{"data": {"names": [...], "ndarray": rows}}`` for an ndarray
request, ``{"data": {"names": [...], "tensor": {"shape", "values"}}}`` for a tensor request
(ndarray when the output is not numeric, as the wrapper did), and ``{"strData": text}`` for a
strData request whose answer is one string. ``names`` follows the wrapper's convention:
``t:0 .. t:<n-1>`` for an output of two or more dimensions with ``n`` columns, else ``[]``.
``meta`` carries ``puid`` (the request's ``meta.puid``, else its ``Seldon-Puid`` header, else a
new one, as Seldon's executor made one) and echoes the request's ``meta.tags``.

Errors have Seldon's shape, ``{"status": {"code": <HTTP status>, "info": <message naming the
field>, "reason": <HTTP status name>, "status": "FAILURE"}}`` (``error_body``).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qs

import orjson

from modelplane.libs.errors import InvalidError
from modelplane.services.gateway.row_tensors import (
    RowsTensor,
    first_output,
    output_rows,
    output_shape,
    rows_tensor,
    scalar_kind,
)
from modelplane.services.gateway.validation import flat_data, load_json_object

# Seldon's request id header (its executor sets one when the request has none).
PUID_HEADER: Final = "seldon-puid"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
# Which part of a SeldonMessage carried the request (it decides the answer's form).
NDARRAY: Final = "ndarray"
TENSOR: Final = "tensor"
STR_DATA: Final = "strData"
# Message fields with no V2 form: refused naming the field.
_REFUSED: Final = {
    "jsonData": "arbitrary JSON has no tensor form",
    "binData": "raw bytes would need a decoding only the model knows",
}
_ASK_INSTEAD: Final = "send data.ndarray, data.tensor or strData"


@dataclass(frozen=True, slots=True)
class SeldonRequest:
    """A SeldonMessage read into one tensor, with what its answer must echo."""

    form: str  # NDARRAY, TENSOR or STR_DATA
    tensor: RowsTensor
    meta: dict[str, Any] = field(default_factory=dict)

    def v2_request(self, input_name: str) -> dict[str, Any]:
        tensor = self.tensor.v2_input(input_name)
        if self.form == STR_DATA:
            tensor["parameters"] = {"content_type": "str"}
        return {"inputs": [tensor]}


def message_json(body: bytes, content_type: str | None, query: str) -> dict[str, Any]:
    """The SeldonMessage of a request body: JSON, form-encoded ``json=...``, or the ``json``
    query parameter of a request without a body. InvalidError naming ``request body``."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media.startswith("multipart/"):
        raise InvalidError(
            "multipart forms are not supported; send the message as JSON", field="request body"
        )
    if media == FORM_CONTENT_TYPE:
        form = parse_qs(body.decode("utf-8", "replace"))
        if "json" not in form:
            raise InvalidError("a form-encoded body needs a json field", field="request body")
        return load_json_object(form["json"][0].encode())
    if not body.strip() and query:
        asked = parse_qs(query).get("json")
        if asked:
            return load_json_object(asked[0].encode())
    return load_json_object(body)


def _meta(message: dict[str, Any]) -> dict[str, Any]:
    meta = message.get("meta")
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise InvalidError("must be an object", field="meta")
    return meta


def _tensor(value: Any) -> RowsTensor:
    if not isinstance(value, dict):
        raise InvalidError("must be an object with shape and values", field="data.tensor")
    shape, values = value.get("shape"), value.get("values")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidError("must be a list of non-negative integers", field="data.tensor.shape")
    if not isinstance(values, list):
        raise InvalidError("must be a list of numbers", field="data.tensor.values")
    for i, v in enumerate(values):
        if scalar_kind(v, f"data.tensor.values[{i}]") not in ("int", "float"):
            raise InvalidError("must be a number", field=f"data.tensor.values[{i}]")
    if math.prod(shape) != len(values):
        raise InvalidError(
            f"has {len(values)} values but shape {shape} holds {math.prod(shape)}", field="data.tensor.values"
        )
    return RowsTensor(shape=tuple(shape), datatype="FP64", data=values)


def _data(data: Any) -> tuple[str, RowsTensor]:
    if not isinstance(data, dict):
        raise InvalidError("must be an object", field="data")
    names = data.get("names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise InvalidError("must be a list of strings", field="data.names")
    if "tftensor" in data:
        raise InvalidError(f"is not supported; {_ASK_INSTEAD}", field="data.tftensor")
    has_ndarray, has_tensor = data.get(NDARRAY) is not None, data.get(TENSOR) is not None
    if has_ndarray and has_tensor:
        raise InvalidError("has both ndarray and tensor; send one of them", field="data")
    if has_ndarray:
        return NDARRAY, rows_tensor(data[NDARRAY], "data.ndarray")
    if has_tensor:
        return TENSOR, _tensor(data[TENSOR])
    raise InvalidError("needs ndarray or tensor", field="data")


def parse_message(message: dict[str, Any]) -> SeldonRequest:
    """A SeldonMessage as one tensor; InvalidError names the offending field."""
    for name, why in _REFUSED.items():
        if message.get(name) is not None:
            raise InvalidError(f"is not supported ({why}); {_ASK_INSTEAD}", field=name)
    meta = _meta(message)
    has_data, has_str = message.get("data") is not None, message.get(STR_DATA) is not None
    if has_data and has_str:
        raise InvalidError("has both data and strData; send one of them", field="request body")
    if has_str:
        text = message[STR_DATA]
        if not isinstance(text, str):
            raise InvalidError("must be a string", field=STR_DATA)
        return SeldonRequest(STR_DATA, RowsTensor(shape=(1,), datatype="BYTES", data=[text]), meta)
    if not has_data:
        raise InvalidError(f"is required ({_ASK_INSTEAD})", field="data")
    form, tensor = _data(message["data"])
    return SeldonRequest(form, tensor, meta)


def puid_of(request: SeldonRequest, headers: Mapping[str, str]) -> str:
    """The prediction's id: the message's ``meta.puid``, else the header, else a new one."""
    puid = request.meta.get("puid")
    if isinstance(puid, str) and puid:
        return puid
    return headers.get(PUID_HEADER) or uuid.uuid4().hex


def _names(shape: list[int] | None) -> list[str]:
    """Seldon's Python wrapper: ``t:<i>`` per column of a 2+-dimensional answer, else none."""
    if shape is None or len(shape) < 2:
        return []
    return [f"t:{i}" for i in range(shape[1])]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def seldon_answer(request: SeldonRequest, response: Any, puid: str) -> dict[str, Any]:
    """The SeldonMessage answering ``request``, from the model's V2 infer response."""
    meta: dict[str, Any] = {"puid": puid}
    tags = request.meta.get("tags")
    if isinstance(tags, dict) and tags:
        meta["tags"] = tags
    output = first_output(response)
    flat = flat_data(output.get("data", []))
    if request.form == STR_DATA and len(flat) == 1 and isinstance(flat[0], str):
        return {STR_DATA: flat[0], "meta": meta}
    shape = output_shape(output)
    data: dict[str, Any] = {"names": _names(shape)}
    if request.form == TENSOR and all(_is_number(v) for v in flat):
        data[TENSOR] = {"shape": shape if shape is not None else [len(flat)], "values": flat}
    else:
        data[NDARRAY] = output_rows(output)
    return {"data": data, "meta": meta}


def error_body(status: int, info: str) -> dict[str, Any]:
    """Seldon's failure message for an HTTP status and a message."""
    try:
        reason = HTTPStatus(status).name
    except ValueError:
        reason = "UNKNOWN"
    return {"status": {"code": status, "info": info, "reason": reason, "status": "FAILURE"}}


def replica_error_text(body: bytes) -> str:
    """The message of a V2 error answer (``{"error": ...}``), else its text as it is."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace").strip()
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return str(parsed["error"])
    return body.decode("utf-8", "replace").strip()
