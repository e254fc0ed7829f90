"""The binary tensor extension through the gateway (tritonclient.http, real MLServer) and its codec."""

from __future__ import annotations

import struct
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest
import tritonclient.http.aio as triton_http
from tritonclient.http import InferResult

from modelplane.libs.errors import InvalidError
from modelplane.services.gateway.app import App
from modelplane.services.gateway.binary_tensors import (
    binary_output_choice,
    decode_inputs,
    encode_outputs,
    header_length,
)
from tests.gateway.conftest import SERVER_MODEL_NAME, MLServerReplica


def _binary_body(request: dict[str, Any], *tensors: bytes) -> tuple[bytes, int]:
    header = orjson.dumps(request)
    return b"".join((header, *tensors)), len(header)


def _binary_iris_request(mlserver: MLServerReplica, rows: int) -> tuple[bytes, int]:
    data = mlserver.iris.X[:rows]
    raw = data.astype("<f8").tobytes()
    request = {
        "id": "req-7",
        "inputs": [
            {
                "name": "predict",
                "shape": list(data.shape),
                "datatype": "FP64",
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
    }
    return _binary_body(request, raw)


# ---- MLServer itself --------------------------------------------------------------------------------
async def test_mlserver_lacks_the_binary_extension(
    mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """MLServer refuses a binary-tensor body, which is why the gateway translates (if this starts
    passing through, MLServer gained the extension and the gateway could forward bodies as they are)."""
    body, length = _binary_iris_request(mlserver, 2)
    async with http.post(
        f"http://{mlserver.http}/v2/models/{SERVER_MODEL_NAME}/infer",
        data=body,
        headers={"Content-Type": "application/json", "Inference-Header-Content-Length": str(length)},
    ) as resp:
        assert resp.status >= 400


# ---- through the gateway with tritonclient ----------------------------------------------------------
@pytest.fixture
async def client(gateway: App) -> Any:
    client = triton_http.InferenceServerClient(url=gateway.http_url.removeprefix("http://"))
    try:
        yield client
    finally:
        await client.close()


@pytest.mark.parametrize(("binary_in", "binary_out"), [(True, True), (True, False), (False, True)])
async def test_tritonclient_binary_tensors_round_trip(
    client: Any, mlserver: MLServerReplica, binary_in: bool, binary_out: bool
) -> None:
    """Binary inputs and/or binary outputs work end to end; the request id comes back."""
    data = mlserver.iris.X[:6]
    inp = triton_http.InferInput("predict", list(data.shape), "FP64")
    inp.set_data_from_numpy(data, binary_data=binary_in)
    out = triton_http.InferRequestedOutput("predict", binary_data=binary_out)
    result = await client.infer("iris", inputs=[inp], outputs=[out], request_id="req-42")
    assert np.asarray(result.as_numpy("predict")).flatten().tolist() == mlserver.iris.expected[:6].tolist()
    response = result.get_response()
    assert response["id"] == "req-42"
    assert ("binary_data_size" in response["outputs"][0].get("parameters", {})) == binary_out


async def test_tritonclient_without_outputs_gets_every_output_binary(
    client: Any, mlserver: MLServerReplica
) -> None:
    """With no outputs named, tritonclient sets binary_data_output and receives binary outputs."""
    data = mlserver.iris.X[:3]
    inp = triton_http.InferInput("predict", list(data.shape), "FP64")
    inp.set_data_from_numpy(data, binary_data=True)
    result = await client.infer("iris", inputs=[inp], parameters={"tag": "kept"})
    output = result.get_response()["outputs"][0]
    assert "binary_data_size" in output["parameters"]
    assert (
        np.asarray(result.as_numpy(output["name"])).flatten().tolist() == mlserver.iris.expected[:3].tolist()
    )


async def test_bad_binary_requests_are_400_naming_the_field(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """A header length past the body, or tensor bytes that do not add up, are refused clearly."""
    url = f"{gateway.http_url}/v2/models/iris/infer"
    body, length = _binary_iris_request(mlserver, 2)
    cases = [
        (body, str(len(body) + 1), "Inference-Header-Content-Length: must be a byte count"),
        (body[:-8], str(length), "inputs[0].parameters.binary_data_size: asks 64 bytes"),
        (body + b"\0", str(length), "request body: 1 bytes after the JSON header belong to no input"),
    ]
    for data, header, message in cases:
        async with http.post(
            url,
            data=data,
            headers={"Content-Type": "application/json", "Inference-Header-Content-Length": header},
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"].startswith(message)


# ---- the codec --------------------------------------------------------------------------------------
def test_decode_inputs_turns_every_datatype_into_json_data() -> None:
    """Numeric, BOOL and BYTES binary inputs become JSON data; JSON inputs and other fields stay."""
    fp32 = np.array([1.5, -2.0], dtype="<f4").tobytes()
    i64 = np.array([[1, 2], [3, 4]], dtype="<i8").tobytes()
    flags = np.array([True, False]).tobytes()
    words = b"".join(struct.pack("<I", len(w)) + w for w in (b"hi", b"", "é".encode()))
    request: dict[str, Any] = {
        "id": "x",
        "parameters": {"binary_data_output": True},
        "inputs": [
            {"name": "a", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": len(fp32)}},
            {"name": "j", "shape": [1], "datatype": "INT64", "data": [9]},
            {"name": "b", "shape": [2, 2], "datatype": "INT64", "parameters": {"binary_data_size": len(i64)}},
            {"name": "c", "shape": [2], "datatype": "BOOL", "parameters": {"binary_data_size": 2, "k": 1}},
            {"name": "d", "shape": [3], "datatype": "BYTES", "parameters": {"binary_data_size": len(words)}},
        ],
    }
    assert decode_inputs(request, memoryview(fp32 + i64 + flags + words))
    inputs: list[dict[str, Any]] = request["inputs"]
    assert [t.get("data") for t in inputs] == [[1.5, -2.0], [9], [1, 2, 3, 4], [True, False], ["hi", "", "é"]]
    assert "parameters" not in inputs[0]
    assert inputs[3]["parameters"] == {"k": 1}
    assert request["id"] == "x"
    assert request["parameters"] == {"binary_data_output": True}


@pytest.mark.parametrize(
    ("datatype", "raw", "message"),
    [
        ("FP64", b"\0" * 7, "inputs[0].parameters.binary_data_size: 7 bytes is not a whole number of FP64"),
        ("BF16", b"\0" * 2, "inputs[0].parameters.binary_data_size: datatype BF16 cannot be sent"),
        ("BYTES", b"\5\0\0\0ab", "inputs[0].parameters.binary_data_size: BYTES element is longer"),
        ("BYTES", b"\1\0\0\0\xff", "inputs[0].parameters.binary_data_size: BYTES element is not UTF-8"),
    ],
)
def test_undecodable_inputs_name_the_field(datatype: str, raw: bytes, message: str) -> None:
    """Tensor bytes that do not fit their datatype are an InvalidError naming the input."""
    request = {
        "inputs": [
            {"name": "a", "shape": [1], "datatype": datatype, "parameters": {"binary_data_size": len(raw)}}
        ]
    }
    with pytest.raises(InvalidError) as err:
        decode_inputs(request, memoryview(raw))
    assert str(err.value).startswith(message)


def test_encoded_outputs_parse_with_tritonclient() -> None:
    """Outputs asked as binary are laid out so tritonclient's own parser reads them back."""
    response = {
        "model_name": "m",
        "id": "r1",
        "outputs": [
            {"name": "p", "shape": [2, 2], "datatype": "FP32", "data": [[0.5, 1.5], [2.5, 3.5]]},
            {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["ab", "c"]},
            {"name": "j", "shape": [1], "datatype": "INT64", "data": [7]},
        ],
    }
    wanted = binary_output_choice(
        {
            "parameters": {"binary_data_output": True},
            "outputs": [{"name": "j", "parameters": {"binary_data": False}}],
        }
    )
    assert wanted is not None
    encoded = encode_outputs(response, wanted)
    assert encoded is not None
    body, length = encoded
    result = InferResult.from_response_body(body, header_length=length)
    assert result.as_numpy("p").tolist() == [[0.5, 1.5], [2.5, 3.5]]
    assert result.as_numpy("s").tolist() == [b"ab", b"c"]
    assert result.as_numpy("j").tolist() == [7]
    assert result.get_response()["id"] == "r1"
    assert "binary_data_size" not in result.get_response()["outputs"][2].get("parameters", {})


def test_binary_output_choice() -> None:
    """Per-output binary_data wins over binary_data_output; nothing asked means None."""
    assert binary_output_choice({"inputs": []}) is None
    assert binary_output_choice({"outputs": [{"name": "a", "parameters": {"binary_data": False}}]}) is None
    some = binary_output_choice({"outputs": [{"name": "a", "parameters": {"binary_data": True}}]})
    assert some is not None
    assert (some("a"), some("b")) == (True, False)


def test_header_length_is_checked_against_the_body() -> None:
    """The header is absent (all JSON) or a byte count within the body."""
    assert header_length(None, 10) is None
    assert header_length("4", 10) == 4
    for bad in ("x", "-1", "11"):
        with pytest.raises(InvalidError, match=r"^Inference-Header-Content-Length: "):
            header_length(bad, 10)
