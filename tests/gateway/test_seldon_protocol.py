"""The Seldon protocol <-> V2 conversions (seldon_protocol.py), as plain data."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from modelplane.libs.errors import InvalidError, PermanentError
from modelplane.services.gateway.seldon_protocol import (
    NDARRAY,
    STR_DATA,
    TENSOR,
    error_body,
    message_json,
    parse_message,
    puid_of,
    replica_error_text,
    seldon_answer,
)

FORM = "application/x-www-form-urlencoded"


def _v2(shape: list[int], data: list[Any], datatype: str = "FP64") -> dict[str, Any]:
    return {"outputs": [{"name": "predict", "shape": shape, "datatype": datatype, "data": data}]}


# ---- request -> V2 ----------------------------------------------------------------------------------
def test_ndarray_becomes_one_tensor_named_by_the_caller() -> None:
    """Rows become [rows, *row shape] with the datatype of their scalars; names are not sent on."""
    request = parse_message({"data": {"names": ["a", "b"], "ndarray": [[1.0, 2], [3, 4]]}})
    assert request.form == NDARRAY
    assert request.v2_request("features") == {
        "inputs": [{"name": "features", "shape": [2, 2], "datatype": "FP64", "data": [1.0, 2, 3, 4]}]
    }
    assert parse_message({"data": {"ndarray": ["x", "y"]}}).tensor.datatype == "BYTES"


def test_tensor_keeps_its_shape_as_fp64() -> None:
    """A Seldon tensor is its shape and values; the proto's values are doubles, so FP64."""
    request = parse_message({"data": {"tensor": {"shape": [1, 4], "values": [5, 3.4, 1.5, 0.2]}}})
    assert request.form == TENSOR
    assert request.v2_request("x")["inputs"][0] == {
        "name": "x",
        "shape": [1, 4],
        "datatype": "FP64",
        "data": [5, 3.4, 1.5, 0.2],
    }


def test_str_data_is_one_bytes_element_with_the_str_content_type() -> None:
    """strData passes through as MLServer's str-coded BYTES tensor of shape [1]."""
    request = parse_message({"strData": "hello there"})
    assert request.form == STR_DATA
    assert request.v2_request("args")["inputs"][0] == {
        "name": "args",
        "shape": [1],
        "datatype": "BYTES",
        "data": ["hello there"],
        "parameters": {"content_type": "str"},
    }


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({}, "data: is required (send data.ndarray, data.tensor or strData)"),
        ({"data": []}, "data: must be an object"),
        ({"data": {}}, "data: needs ndarray or tensor"),
        (
            {"data": {"ndarray": [[1]], "tensor": {"shape": [1], "values": [1]}}},
            "data: has both ndarray and tensor; send one of them",
        ),
        ({"data": {"ndarray": []}}, "data.ndarray: must not be empty"),
        ({"data": {"ndarray": 3}}, "data.ndarray: must be a list"),
        (
            {"data": {"ndarray": [[1, 2], [3, 4], [5]]}},
            "data.ndarray[2]: must have the shape of the first row [2]",
        ),
        ({"data": {"ndarray": [[1, None]]}}, "data.ndarray[0][1]: must be a number, boolean, string or list"),
        ({"data": {"ndarray": [1, "a"]}}, "data.ndarray: mixes int and str values"),
        (
            {"data": {"tensor": {"shape": [2, 4], "values": [1, 2, 3]}}},
            "data.tensor.values: has 3 values but shape [2, 4] holds 8",
        ),
        (
            {"data": {"tensor": {"shape": [2, -1], "values": []}}},
            "data.tensor.shape: must be a list of non-negative integers",
        ),
        ({"data": {"tensor": {"shape": [2], "values": [1, "a"]}}}, "data.tensor.values[1]: must be a number"),
        ({"data": {"tensor": [1, 2]}}, "data.tensor: must be an object with shape and values"),
        ({"data": {"names": "a", "ndarray": [[1]]}}, "data.names: must be a list of strings"),
        (
            {"data": {"tftensor": {}}},
            "data.tftensor: is not supported; send data.ndarray, data.tensor or strData",
        ),
        (
            {"jsonData": {"a": 1}},
            "jsonData: is not supported (arbitrary JSON has no tensor form); "
            "send data.ndarray, data.tensor or strData",
        ),
        (
            {"binData": "aGk="},
            "binData: is not supported (raw bytes would need a decoding only the model knows); send data.ndarray, data.tensor or strData",
        ),
        ({"strData": 3}, "strData: must be a string"),
        (
            {"strData": "a", "data": {"ndarray": [1]}},
            "request body: has both data and strData; send one of them",
        ),
        ({"data": {"ndarray": [1]}, "meta": []}, "meta: must be an object"),
    ],
)
def test_bad_messages_name_the_field(message: dict[str, Any], error: str) -> None:
    """Every refused message is an InvalidError whose text starts with the offending field."""
    with pytest.raises(InvalidError) as raised:
        parse_message(message)
    assert str(raised.value) == error


def test_message_json_reads_json_forms_and_the_query() -> None:
    """JSON, form-encoded json=..., or ?json= on an empty body (Seldon's Python wrapper's inputs)."""
    message = {"data": {"ndarray": [[1, 2]]}}
    text = orjson.dumps(message)
    assert message_json(text, "application/json", "") == message
    assert message_json(text, None, "") == message
    form = b"json=" + text.replace(b'"', b"%22").replace(b"[", b"%5B").replace(b"]", b"%5D")
    assert message_json(form, f"{FORM}; charset=utf-8", "") == message
    assert message_json(b"", None, "json=" + text.decode()) == message
    with pytest.raises(InvalidError, match="request body: a form-encoded body needs a json field"):
        message_json(b"data=1", FORM, "")
    with pytest.raises(InvalidError, match="request body: multipart forms are not supported"):
        message_json(b"--x--", "multipart/form-data; boundary=x", "")
    with pytest.raises(InvalidError, match="request body: invalid JSON"):
        message_json(b"{nope", "application/json", "")
    with pytest.raises(InvalidError, match="request body: must be a JSON object"):
        message_json(b"[1]", "application/json", "")


# ---- V2 -> answer -----------------------------------------------------------------------------------
def test_ndarray_answer_has_rows_and_seldon_column_names() -> None:
    """2-D outputs are named t:0..t:n-1 (Seldon's wrapper), 1-D ones get no names."""
    request = parse_message({"data": {"ndarray": [[1, 2]]}, "meta": {"puid": "p1", "tags": {"t": 1}}})
    proba = seldon_answer(request, _v2([2, 3], [0.1, 0.2, 0.7, 0.5, 0.4, 0.1]), "p1")
    assert proba == {
        "data": {"names": ["t:0", "t:1", "t:2"], "ndarray": [[0.1, 0.2, 0.7], [0.5, 0.4, 0.1]]},
        "meta": {"puid": "p1", "tags": {"t": 1}},
    }
    labels = seldon_answer(request, _v2([3], [0, 1, 2], "INT64"), "p1")
    assert labels["data"] == {"names": [], "ndarray": [0, 1, 2]}


def test_tensor_answer_for_a_tensor_request_unless_not_numeric() -> None:
    """A tensor request gets a tensor answer (shape, flat values); text outputs fall back to ndarray."""
    request = parse_message({"data": {"tensor": {"shape": [2, 1], "values": [1, 2]}}})
    # MLServer's column for a 1-D result (sklearn predict) is the flat answer Seldon's servers gave.
    assert seldon_answer(request, _v2([2, 1], [[0], [2]], "INT64"), "p")["data"] == {
        "names": [],
        "tensor": {"shape": [2], "values": [0, 2]},
    }
    text = seldon_answer(request, _v2([2], ["a", "b"], "BYTES"), "p")
    assert text["data"] == {"names": [], "ndarray": ["a", "b"]}


def test_str_data_answer_for_one_string() -> None:
    """A strData request answered with one string gets strData back; otherwise data."""
    request = parse_message({"strData": "hi"})
    assert seldon_answer(request, _v2([1], ["hello"], "BYTES"), "p") == {
        "strData": "hello",
        "meta": {"puid": "p"},
    }
    assert seldon_answer(request, _v2([2], [1, 2], "INT64"), "p")["data"] == {"names": [], "ndarray": [1, 2]}


def test_answer_without_outputs_is_a_permanent_error() -> None:
    """A replica answer with no outputs cannot be translated."""
    with pytest.raises(PermanentError):
        seldon_answer(parse_message({"strData": "x"}), {"outputs": []}, "p")


def test_puid_comes_from_meta_then_header_then_is_new() -> None:
    """The message's meta.puid wins, then the Seldon-Puid header; else a fresh id each time."""
    with_meta = parse_message({"strData": "x", "meta": {"puid": "from-meta"}})
    assert puid_of(with_meta, {"seldon-puid": "from-header"}) == "from-meta"
    bare = parse_message({"strData": "x"})
    assert puid_of(bare, {"seldon-puid": "from-header"}) == "from-header"
    first, second = puid_of(bare, {}), puid_of(bare, {})
    assert first
    assert first != second


def test_error_body_and_replica_error_text() -> None:
    """Seldon's failure shape; a V2 replica's {"error"} message is what its info carries."""
    assert error_body(400, "data: needs ndarray or tensor") == {
        "status": {
            "code": 400,
            "info": "data: needs ndarray or tensor",
            "reason": "BAD_REQUEST",
            "status": "FAILURE",
        }
    }
    assert error_body(503, "x")["status"]["reason"] == "SERVICE_UNAVAILABLE"
    assert error_body(599, "x")["status"]["reason"] == "UNKNOWN"
    assert replica_error_text(b'{"error": "bad shape"}') == "bad shape"
    assert replica_error_text(b"plain failure\n") == "plain failure"
    assert replica_error_text(b'{"detail": 1}') == '{"detail": 1}'
