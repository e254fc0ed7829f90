"""KServe V1 predict <-> Open Inference Protocol v2 infer, as plain data conversions.

``POST /v1/models/{m}:predict`` carries ``{"instances": [...]}``: one row per instance. The
gateway's replicas speak V2 only, so the instances become ONE V2 input tensor:

- name: the model's only input from its V2 metadata when it declares exactly one, else
  ``input-0`` (``input_name``);
- shape: ``[len(instances), *shape of one instance]``; every instance must have the same shape
  (ragged rows are refused naming the first row that differs);
- datatype from the scalars: ``BOOL`` if all are booleans, ``BYTES`` if all are strings,
  ``INT64`` if all are integers, ``FP64`` if they are numbers with at least one float (and for
  instances without any scalar, e.g. ``[[], []]``); any other mix is refused;
- data: the scalars flattened in row-major order.

The V2 answer becomes ``{"predictions": rows}``: the FIRST output's data reshaped by its shape,
so an output of shape ``[3]`` gives ``[a, b, c]`` and one of shape ``[3, 2]`` gives three rows
of two. Bad bodies raise ``InvalidError`` naming the field (``request body``, ``instances`` or
``instances[i]``); a replica answer without outputs is a ``PermanentError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from modelplane.libs.errors import InvalidError, PermanentError
from modelplane.services.gateway.validation import flat_data, load_json_object

DEFAULT_INPUT_NAME = "input-0"

# Kind of each JSON scalar, in the order a mix is widened ("int" + "float" -> "float").
_KIND_DATATYPE = {"bool": "BOOL", "int": "INT64", "float": "FP64", "str": "BYTES"}


@dataclass(frozen=True, slots=True)
class InstancesTensor:
    """The V1 instances as one V2 tensor (without its name, which comes from metadata)."""

    shape: tuple[int, ...]
    datatype: str
    data: list[Any]

    def v2_request(self, input_name: str) -> dict[str, Any]:
        return {
            "inputs": [
                {"name": input_name, "shape": list(self.shape), "datatype": self.datatype, "data": self.data}
            ]
        }


def _kind(value: Any, field: str) -> str:
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


def _flatten(value: Any, shape: tuple[int, ...], field: str, out: list[Any], kinds: set[str]) -> None:
    """Append ``value``'s scalars to ``out``, checking it has exactly ``shape``."""
    if not shape:
        if isinstance(value, list):
            raise InvalidError("has more dimensions than the first instance", field=field)
        kinds.add(_kind(value, field))
        out.append(value)
        return
    if not isinstance(value, list) or len(value) != shape[0]:
        raise InvalidError(f"must have the shape of the first instance {list(shape)}", field=field)
    for i, item in enumerate(value):
        _flatten(item, shape[1:], f"{field}[{i}]", out, kinds)


def _datatype(kinds: set[str]) -> str:
    if not kinds:
        return "FP64"
    if kinds == {"int", "float"}:
        return "FP64"
    if len(kinds) > 1:
        raise InvalidError(f"mixes {' and '.join(sorted(kinds))} values", field="instances")
    return _KIND_DATATYPE[next(iter(kinds))]


def parse_instances(body: bytes) -> InstancesTensor:
    """The V1 predict body as one tensor; InvalidError names the offending field."""
    parsed = load_json_object(body)
    instances = parsed.get("instances")
    if instances is None:
        raise InvalidError("is required", field="instances")
    if not isinstance(instances, list):
        raise InvalidError("must be a list", field="instances")
    if not instances:
        raise InvalidError("must not be empty", field="instances")
    inner = _shape_of(instances[0])
    data: list[Any] = []
    kinds: set[str] = set()
    for i, instance in enumerate(instances):
        _flatten(instance, inner, f"instances[{i}]", data, kinds)
    return InstancesTensor(shape=(len(instances), *inner), datatype=_datatype(kinds), data=data)


def input_name(metadata: Any) -> str:
    """The name of the model's only input per its V2 metadata, else ``input-0``."""
    inputs = metadata.get("inputs") if isinstance(metadata, dict) else None
    if isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], dict):
        name = inputs[0].get("name")
        if isinstance(name, str) and name:
            return name
    return DEFAULT_INPUT_NAME


def _reshape(flat: list[Any], shape: list[int]) -> list[Any]:
    if len(shape) <= 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [_reshape(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def predictions(response: Any) -> dict[str, Any]:
    """The V1 answer for a V2 infer response: its first output as rows."""
    outputs = response.get("outputs") if isinstance(response, dict) else None
    if not isinstance(outputs, list) or not outputs or not isinstance(outputs[0], dict):
        raise PermanentError("the model answered without outputs")
    first = outputs[0]
    flat = flat_data(first.get("data", []))
    shape = first.get("shape")
    if (
        isinstance(shape, list)
        and all(isinstance(d, int) and d >= 0 for d in shape)
        and math.prod(shape) == len(flat)
    ):
        return {"predictions": _reshape(flat, shape)}
    return {"predictions": flat}
