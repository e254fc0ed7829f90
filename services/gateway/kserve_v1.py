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

(The rows <-> tensor rules are shared with the Seldon protocol: row_tensors.py.)

The V2 answer becomes ``{"predictions": rows}``: the FIRST output's data reshaped by its shape,
so an output of shape ``[3]`` gives ``[a, b, c]`` and one of shape ``[3, 2]`` gives three rows
of two. Bad bodies raise ``InvalidError`` naming the field (``request body``, ``instances`` or
``instances[i]``); a replica answer without outputs is a ``PermanentError``.
"""

from __future__ import annotations

from typing import Any

from modelplane.libs.errors import InvalidError
from modelplane.services.gateway.row_tensors import RowsTensor, first_output, output_rows, rows_tensor
from modelplane.services.gateway.validation import load_json_object

DEFAULT_INPUT_NAME = "input-0"

# The instances as one V2 tensor (named later, from the model's metadata).
InstancesTensor = RowsTensor


def parse_instances(body: bytes) -> InstancesTensor:
    """The V1 predict body as one tensor; InvalidError names the offending field."""
    parsed = load_json_object(body)
    instances = parsed.get("instances")
    if instances is None:
        raise InvalidError("is required", field="instances")
    return rows_tensor(instances, "instances", noun="instance")


def input_name(metadata: Any) -> str:
    """The name of the model's only input per its V2 metadata, else ``input-0``."""
    inputs = metadata.get("inputs") if isinstance(metadata, dict) else None
    if isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], dict):
        name = inputs[0].get("name")
        if isinstance(name, str) and name:
            return name
    return DEFAULT_INPUT_NAME


def predictions(response: Any) -> dict[str, Any]:
    """The V1 answer for a V2 infer response: its first output as rows."""
    return {"predictions": output_rows(first_output(response))}
