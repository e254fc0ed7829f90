"""V2 JSON <-> Open Inference Protocol protobuf: round trips, raw contents, bad tensors."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from modelplane.libs import v2_json
from modelplane.libs.errors import InvalidError
from modelplane.proto import open_inference_pb2 as oip

# Values each datatype carries exactly through JSON, typed contents and raw bytes.
SAMPLES: dict[str, list[Any]] = {
    "BOOL": [True, False, True, True],
    "INT8": [-128, 0, 1, 127],
    "INT16": [-32768, -1, 2, 32767],
    "INT32": [-(2**31), 0, 7, 2**31 - 1],
    "INT64": [-(2**63), -5, 5, 2**63 - 1],
    "UINT8": [0, 1, 128, 255],
    "UINT16": [0, 1, 300, 65535],
    "UINT32": [0, 1, 70000, 2**32 - 1],
    "UINT64": [0, 1, 2**40, 2**64 - 1],
    "FP16": [0.5, -2.0, 1.25, 65504.0],
    "FP32": [0.5, -2.0, 1.25, 2.0**100],
    "FP64": [0.1, -2.5e-300, 1.0e300, 3.14159],
    "BYTES": ["a", "", "héllo", "x y"],
}


def tensor(datatype: str, data: list[Any], name: str = "t", shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape or [2, 2], "data": data}


@pytest.mark.parametrize("datatype", list(SAMPLES))
@pytest.mark.parametrize("raw", [False, True])
def test_request_round_trip_for_every_datatype(datatype: str, raw: bool) -> None:
    """A request survives JSON -> protobuf -> JSON for every datatype, typed or raw."""
    request = {"id": "r1", "inputs": [tensor(datatype, SAMPLES[datatype])]}
    message = v2_json.request_to_pb(request, model_name="m", raw=raw)
    assert message.model_name == "m"
    uses_raw = raw or datatype == "FP16"
    assert bool(message.raw_input_contents) is uses_raw
    assert v2_json.request_from_pb(message) == request


@pytest.mark.parametrize("datatype", list(SAMPLES))
@pytest.mark.parametrize("raw", [False, True])
def test_response_round_trip_for_every_datatype(datatype: str, raw: bool) -> None:
    """A response survives JSON -> protobuf -> JSON for every datatype, typed or raw."""
    response = {
        "model_name": "m",
        "model_version": "2",
        "id": "r1",
        "outputs": [tensor(datatype, SAMPLES[datatype], name="out")],
    }
    message = v2_json.response_to_pb(response, raw=raw)
    assert bool(message.raw_output_contents) is (raw or datatype == "FP16")
    assert v2_json.response_from_pb(message) == response


def test_typed_contents_use_the_datatype_field() -> None:
    """Each datatype's values land in its InferTensorContents field."""
    fields = {
        "BOOL": "bool_contents",
        "INT8": "int_contents",
        "INT32": "int_contents",
        "INT64": "int64_contents",
        "UINT16": "uint_contents",
        "UINT64": "uint64_contents",
        "FP32": "fp32_contents",
        "FP64": "fp64_contents",
        "BYTES": "bytes_contents",
    }
    for datatype, field in fields.items():
        message = v2_json.request_to_pb({"inputs": [tensor(datatype, SAMPLES[datatype])]})
        assert len(getattr(message.inputs[0].contents, field)) == 4, datatype


def test_fp16_makes_every_tensor_raw() -> None:
    """One FP16 tensor makes all tensors of the message raw (raw is all or nothing)."""
    request = {"inputs": [tensor("FP16", SAMPLES["FP16"], "h"), tensor("INT32", [1, 2, 3, 4], "i")]}
    message = v2_json.request_to_pb(request)
    assert len(message.raw_input_contents) == 2
    assert not message.inputs[1].contents.int_contents
    assert message.raw_input_contents[1] == struct.pack("<4i", 1, 2, 3, 4)


def test_raw_contents_are_decoded_little_endian() -> None:
    """Raw contents written by another client are decoded little-endian, BYTES length-prefixed."""
    message = oip.ModelInferRequest(
        inputs=[
            oip.ModelInferRequest.InferInputTensor(name="f", datatype="FP32", shape=[3]),
            oip.ModelInferRequest.InferInputTensor(name="u", datatype="UINT16", shape=[1, 2]),
            oip.ModelInferRequest.InferInputTensor(name="b", datatype="BYTES", shape=[2]),
            oip.ModelInferRequest.InferInputTensor(name="h", datatype="FP16", shape=[2]),
            oip.ModelInferRequest.InferInputTensor(name="o", datatype="BOOL", shape=[2]),
        ],
        raw_input_contents=[
            np.array([1.5, -2.0, 4.0], dtype="<f4").tobytes(),
            struct.pack("<2H", 7, 65535),
            struct.pack("<I", 2) + b"hi" + struct.pack("<I", 0),
            np.array([0.5, 3.0], dtype="<f2").tobytes(),
            b"\x01\x00",
        ],
    )
    inputs = v2_json.request_from_pb(message)["inputs"]
    assert [t["data"] for t in inputs] == [
        [1.5, -2.0, 4.0],
        [7, 65535],
        ["hi", ""],
        [0.5, 3.0],
        [True, False],
    ]
    assert inputs[1]["shape"] == [1, 2]


def test_non_utf8_bytes_become_base64_with_content_type() -> None:
    """BYTES that are not UTF-8 become base64 text marked content_type base64 (MLServer's codec)."""
    message = oip.ModelInferResponse(
        model_name="m",
        outputs=[oip.ModelInferResponse.InferOutputTensor(name="img", datatype="BYTES", shape=[2])],
    )
    message.outputs[0].contents.bytes_contents.extend([b"\xff\x00", b"ok"])
    out = v2_json.response_from_pb(message)["outputs"][0]
    assert out["data"] == ["/wA=", "b2s="]
    assert out["parameters"] == {"content_type": "base64"}
    again = v2_json.response_from_pb(v2_json.response_to_pb(v2_json.response_from_pb(message)))
    assert again["outputs"][0] == out


def test_nested_data_is_flattened_row_major() -> None:
    """Nested JSON data is flattened row-major."""
    request = {"inputs": [tensor("INT64", [[1, 2], [3, 4]])]}
    message = v2_json.request_to_pb(request)
    assert list(message.inputs[0].contents.int64_contents) == [1, 2, 3, 4]


def test_parameters_requested_outputs_and_tensor_parameters_round_trip() -> None:
    """Request, tensor and requested-output parameters of every JSON scalar type survive."""
    request = {
        "id": "abc",
        "parameters": {"flag": True, "count": -3, "mode": "fast"},
        "inputs": [{**tensor("INT32", [1, 2, 3, 4]), "parameters": {"content_type": "np"}}],
        "outputs": [{"name": "o1", "parameters": {"binary_data": False}}, {"name": "o2"}],
    }
    assert v2_json.request_from_pb(v2_json.request_to_pb(request)) == request


def test_float_parameters_are_kept() -> None:
    """A float parameter keeps its value (a double, or its text when the protocol has no double)."""
    message = v2_json.request_to_pb({"parameters": {"temperature": 0.7}, "inputs": []})
    value = v2_json.request_from_pb(message)["parameters"]["temperature"]
    assert float(value) == 0.7


def test_object_parameters_are_sent_as_json_text_and_null_left_out() -> None:
    """An object parameter travels as JSON text; a null one is left out."""
    message = v2_json.request_to_pb({"parameters": {"headers": {"a": 1}, "none": None}, "inputs": []})
    assert v2_json.request_from_pb(message)["parameters"] == {"headers": '{"a":1}'}


def test_empty_tensor_round_trips() -> None:
    """A tensor with a zero dimension has no data and round-trips."""
    request = {"inputs": [tensor("FP32", [], shape=[0, 3])]}
    assert v2_json.request_from_pb(v2_json.request_to_pb(request)) == request


@pytest.mark.parametrize(
    ("bad", "field", "words"),
    [
        (tensor("FP32", [1.0, 2.0, 3.0]), "inputs[0].data", "needs 4"),
        (tensor("FLOAT", [1, 2, 3, 4]), "inputs[0].datatype", "unknown datatype"),
        (tensor("INT8", [1, 2, 3, 128]), "inputs[0].data", "outside the INT8 range"),
        (tensor("UINT32", [1, 2, 3, -1]), "inputs[0].data", "outside the UINT32 range"),
        (tensor("INT64", [1, 2, 3, 4.5]), "inputs[0].data", "needs integers"),
        (tensor("FP64", [1, 2, 3, "x"]), "inputs[0].data", "needs numbers"),
        (tensor("FP64", [1, 2, 3, True]), "inputs[0].data", "needs numbers"),
        (tensor("BOOL", [True, False, 2, True]), "inputs[0].data", "true/false"),
        (tensor("BYTES", ["a", "b", "c", 4]), "inputs[0].data", "needs strings"),
        (tensor("FP32", [1.0, 2.0, 3.0, 4.0], shape=[-1, 4]), "inputs[0].shape", "shape"),
        ({"name": "t", "datatype": "FP32", "shape": [1], "data": 1.0}, "inputs[0].data", "list"),
        ({"datatype": "FP32", "shape": [1], "data": [1.0]}, "inputs[0].name", "name"),
    ],
)
def test_bad_json_tensors_are_invalid(bad: dict[str, Any], field: str, words: str) -> None:
    """A bad JSON tensor is an InvalidError naming the tensor and the field."""
    with pytest.raises(InvalidError) as caught:
        v2_json.request_to_pb({"inputs": [bad]})
    assert caught.value.field == field
    assert words in caught.value.message
    if "name" in bad:
        assert "'t'" in caught.value.message


def _pb_tensor(datatype: str, shape: list[int]) -> oip.ModelInferRequest.InferInputTensor:
    return oip.ModelInferRequest.InferInputTensor(name="t", datatype=datatype, shape=shape)


def test_bad_protobuf_tensors_are_invalid() -> None:
    """Protobuf tensors with a wrong count, datatype or raw length are InvalidErrors naming them."""
    counted = _pb_tensor("FP32", [3])
    counted.contents.fp32_contents.extend([1.0, 2.0])
    cases: list[tuple[oip.ModelInferRequest, str]] = [
        (oip.ModelInferRequest(inputs=[counted]), "inputs[0].contents"),
        (oip.ModelInferRequest(inputs=[_pb_tensor("COMPLEX", [1])]), "inputs[0].datatype"),
        (oip.ModelInferRequest(inputs=[_pb_tensor("FP16", [1])]), "inputs[0].contents"),
        (
            oip.ModelInferRequest(inputs=[_pb_tensor("INT32", [2])], raw_input_contents=[b"\x00" * 7]),
            "inputs[0].raw",
        ),
        (
            oip.ModelInferRequest(
                inputs=[_pb_tensor("BYTES", [1])], raw_input_contents=[b"\x05\x00\x00\x00ab"]
            ),
            "inputs[0].raw",
        ),
        (
            oip.ModelInferRequest(
                inputs=[_pb_tensor("BYTES", [2])], raw_input_contents=[b"\x01\x00\x00\x00a"]
            ),
            "inputs[0].raw",
        ),
        (
            oip.ModelInferRequest(
                inputs=[_pb_tensor("INT32", [1]), _pb_tensor("INT32", [1])], raw_input_contents=[b"\x00" * 4]
            ),
            "raw_input_contents",
        ),
    ]
    for message, field in cases:
        with pytest.raises(InvalidError) as caught:
            v2_json.request_from_pb(message)
        assert caught.value.field == field, caught.value


def test_bad_top_level_fields_are_invalid() -> None:
    """A non-string id, non-object parameters or non-list inputs are InvalidErrors naming them."""
    cases: list[tuple[dict[str, Any], str]] = [
        ({"id": 5, "inputs": []}, "id"),
        ({"parameters": [1], "inputs": []}, "parameters"),
        ({"inputs": {"a": 1}}, "inputs"),
        ({"inputs": [], "outputs": [{"nom": "x"}]}, "outputs[0]"),
    ]
    for body, field in cases:
        with pytest.raises(InvalidError) as caught:
            v2_json.request_to_pb(body)
        assert caught.value.field == field
