"""Nested JSON rows <-> one Open Inference Protocol v2 tensor, as plain data.

The row-oriented protocols the gateway translates (KServe V1 ``instances``, Seldon's
``data.ndarray``) send a batch as nested JSON lists and expect nested lists back; the replicas
speak V2, whose tensors are a shape, a datatype and flat row-major data. Both translations share
these rules:

- shape: ``[len(rows), *shape of one row]``; every row must have the first row's shape (ragged
  rows are refused naming the first element that differs, e.g. ``instances[1]``);
- datatype from the scalars: ``BOOL`` if all are booleans, ``BYTES`` if all are strings,
  ``INT64`` if all are integers, ``FP64`` if they are numbers with at least one float (and for
  rows without any scalar, e.g. ``[[], []]``); any other mix is refused;
- data: the scalars flattened in row-major order;
- back: an output's flat data reshaped by its shape (flat when the shape does not fit the data;
  a column ``[N, 1]`` comes back as N values, see ``output_shape``).

Errors are ``InvalidError`` naming the field under the prefix the caller gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from modelplane.libs.errors import InvalidError, PermanentError
from modelplane.services.gateway.validation import flat_data

# Kind of each JSON scalar; a mix of "int" and "float" widens to FP64.
_KIND_DATATYPE = {"bool": "BOOL", "int": "INT64", "float": "FP64", "str": "BYTES"}


@dataclass(frozen=True, slots=True)
class RowsTensor:
    """Rows as one V2 tensor (without its name, which comes from the model's metadata)."""

    shape: tuple[int, ...]
    datatype: str
    data: list[Any]

    def v2_input(self, name: str) -> dict[str, Any]:
        return {"name": name, "shape": list(self.shape), "datatype": self.datatype, "data": self.data}

    def v2_request(self, input_name: str) -> dict[str, Any]:
        return {"inputs": [self.v2_input(input_name)]}


def scalar_kind(value: Any, field: str) -> str:
    """``bool``, ``int``, ``float`` or ``str``; InvalidError for anything else (null, objects)."""
    # bool first: it is a subclass of int.
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    raise InvalidError("must be a number, boolean, string or list", field=field)


def _shape_of(value: Any) -> tuple[int, ...]:
    """The shape of a nested list as seen along its first elements."""
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _flatten(
    value: Any, shape: tuple[int, ...], field: str, noun: str, out: list[Any], kinds: set[str]
) -> None:
    """Append ``value``'s scalars to ``out``, checking it has exactly ``shape``."""
    if not shape:
        if isinstance(value, list):
            raise InvalidError(f"has more dimensions than the first {noun}", field=field)
        kinds.add(scalar_kind(value, field))
        out.append(value)
        return
    if not isinstance(value, list) or len(value) != shape[0]:
        raise InvalidError(f"must have the shape of the first {noun} {list(shape)}", field=field)
    for i, item in enumerate(value):
        _flatten(item, shape[1:], f"{field}[{i}]", noun, out, kinds)


def datatype_of(kinds: set[str], field: str) -> str:
    """The V2 datatype of scalars of these kinds; InvalidError on ``field`` for a mix."""
    if not kinds or kinds == {"int", "float"}:
        return "FP64"
    if len(kinds) > 1:
        raise InvalidError(f"mixes {' and '.join(sorted(kinds))} values", field=field)
    return _KIND_DATATYPE[next(iter(kinds))]


def rows_tensor(rows: Any, field: str, noun: str = "row") -> RowsTensor:
    """A non-empty list of rows (each a scalar or nested list) as one tensor; errors call a
    row by the protocol's ``noun`` for it (KServe V1: "instance")."""
    if not isinstance(rows, list):
        raise InvalidError("must be a list", field=field)
    if not rows:
        raise InvalidError("must not be empty", field=field)
    inner = _shape_of(rows[0])
    data: list[Any] = []
    kinds: set[str] = set()
    for i, row in enumerate(rows):
        _flatten(row, inner, f"{field}[{i}]", noun, data, kinds)
    return RowsTensor(shape=(len(rows), *inner), datatype=datatype_of(kinds, field), data=data)


def first_output(response: Any) -> dict[str, Any]:
    """A V2 infer response's first output; PermanentError when it has none."""
    outputs = response.get("outputs") if isinstance(response, dict) else None
    if not isinstance(outputs, list) or not outputs or not isinstance(outputs[0], dict):
        raise PermanentError("the model answered without outputs")
    return outputs[0]


def output_shape(output: dict[str, Any]) -> list[int] | None:
    """The output's shape when it is a valid shape for its data, else None.

    A column (``[N, 1]``) is ``[N]``: MLServer's numpy codec answers a one-dimensional result
    (sklearn's ``predict``, a regressor's values) as a column, which KServe's and Seldon's own
    servers returned as a flat list of N values; their clients read it that way."""
    shape = output.get("shape")
    flat = flat_data(output.get("data", []))
    if (
        isinstance(shape, list)
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        and math.prod(shape) == len(flat)
    ):
        return shape[:1] if len(shape) == 2 and shape[1] == 1 else shape
    return None


def _reshape(flat: list[Any], shape: list[int]) -> list[Any]:
    if len(shape) <= 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [_reshape(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def output_rows(output: dict[str, Any]) -> list[Any]:
    """An output's data as nested rows by its shape (flat when the shape does not fit)."""
    flat = flat_data(output.get("data", []))
    shape = output_shape(output)
    return _reshape(flat, shape) if shape is not None else flat
