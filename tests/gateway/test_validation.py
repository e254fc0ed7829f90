"""Cheap V2 request checks: the message names the offending field."""

from __future__ import annotations

import orjson
import pytest

from modelplane.libs.errors import InvalidError
from modelplane.services.gateway.validation import InputHeader, validate_infer_json, validate_inputs

GOOD_INPUT = {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}


def test_valid_request_passes() -> None:
    """A well-formed request is accepted and returned parsed."""
    parsed = validate_infer_json(orjson.dumps({"inputs": [GOOD_INPUT]}))
    assert parsed["inputs"][0]["name"] == "x"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{oops", "request body: invalid JSON"),
        (b"[1, 2]", "request body: must be a JSON object"),
        (b"{}", "inputs: is required"),
        (b'{"inputs": {}}', "inputs: must be a list"),
        (b'{"inputs": []}', "inputs: must not be empty"),
        (b'{"inputs": [3]}', "inputs[0]: must be an object"),
        (
            orjson.dumps({"inputs": [GOOD_INPUT, {**GOOD_INPUT, "shape": None}]}),
            "inputs[1].shape: is required",
        ),
        (
            orjson.dumps({"inputs": [{k: v for k, v in GOOD_INPUT.items() if k != "data"}]}),
            "inputs[0].data: is required",
        ),
        (
            orjson.dumps({"inputs": [{**GOOD_INPUT, "name": ""}]}),
            "inputs[0].name: must be a non-empty string",
        ),
        (
            orjson.dumps({"inputs": [{**GOOD_INPUT, "shape": "1"}]}),
            "inputs[0].shape: must be a list of integers",
        ),
    ],
)
def test_bad_json_request_names_the_field(body: bytes, message: str) -> None:
    """Each malformed body is an InvalidError whose text starts with the field."""
    with pytest.raises(InvalidError) as err:
        validate_infer_json(body)
    assert str(err.value).startswith(message)


def test_grpc_inputs_need_name_and_datatype() -> None:
    """gRPC inputs must exist and each carry a name and a datatype."""
    validate_inputs([InputHeader("x", "FP64")])
    with pytest.raises(InvalidError, match=r"^inputs: must not be empty$"):
        validate_inputs([])
    with pytest.raises(InvalidError, match=r"^inputs\[1\]\.name: is required$"):
        validate_inputs([InputHeader("x", "FP64"), InputHeader(None, "FP64")])
    with pytest.raises(InvalidError, match=r"^inputs\[0\]\.datatype: is required$"):
        validate_inputs([InputHeader("x", None)])


def test_binary_inputs_need_no_data_and_only_the_json_header_is_parsed() -> None:
    """With a header length, only that prefix is parsed and binary_data_size stands in for data."""
    header = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}}]}
    )
    parsed = validate_infer_json(header + b"\xff" * 8, len(header))
    assert parsed["inputs"][0]["parameters"] == {"binary_data_size": 8}
    with pytest.raises(InvalidError, match=r"^inputs\[0\]\.parameters\.binary_data_size: needs the"):
        validate_infer_json(header)
