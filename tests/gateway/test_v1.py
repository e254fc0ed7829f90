"""KServe V1 routes of the gateway (plain HTTP) against a real MLServer, and the V1 <-> V2 mapping."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from nats.js import JetStreamContext

from modelplane.libs.errors import InvalidError, PermanentError
from modelplane.libs.routes import Route, RouteVersion
from modelplane.services.gateway.app import App
from modelplane.services.gateway.kserve_v1 import input_name, parse_instances, predictions
from tests.gateway.conftest import MLServerReplica, eventually, put_route


async def _predict(http: aiohttp.ClientSession, url: str, body: object) -> tuple[int, Any]:
    async with http.post(url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}) as resp:
        return resp.status, await resp.json()


# ---- through the gateway ----------------------------------------------------------------------------
async def test_v1_predict_returns_sklearn_predictions(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """POST /v1/models/iris:predict turns instances into a V2 tensor and returns one prediction per row."""
    status, body = await _predict(
        http, f"{gateway.http_url}/v1/models/iris:predict", {"instances": mlserver.iris.X[:5].tolist()}
    )
    assert status == 200, body
    # MLServer's sklearn runtime answers a column [5, 1]; KServe's sklearn server answered a flat
    # list of labels, which is what V1 clients read.
    assert body == {"predictions": mlserver.iris.expected[:5].tolist()}


async def test_v1_model_status(gateway: App, js: JetStreamContext, http: aiohttp.ClientSession) -> None:
    """GET /v1/models/{m} is {"name", "ready"}: true with a replica, false without, 404 if unknown."""
    await put_route(js, Route(model="empty", versions=(RouteVersion(1, "empty_1", ()),)))

    async def routed() -> bool:
        return gateway.routes.get("empty") is not None

    await eventually(routed, 10, "route 'empty'")
    async with http.get(f"{gateway.http_url}/v1/models/iris") as resp:
        assert resp.status == 200
        assert await resp.json() == {"name": "iris", "ready": True}
    async with http.get(f"{gateway.http_url}/v1/models/empty") as resp:
        assert resp.status == 200
        assert await resp.json() == {"name": "empty", "ready": False}
    async with http.get(f"{gateway.http_url}/v1/models/nosuch") as resp:
        assert resp.status == 404
        assert "nosuch" in (await resp.json())["error"]


async def test_v1_bad_bodies_are_400_naming_the_field(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """Missing, empty, ragged or mixed instances are refused before any replica call."""
    url = f"{gateway.http_url}/v1/models/iris:predict"
    cases: list[tuple[object, str]] = [
        ({"inputs": [1]}, "instances: is required"),
        ({"instances": []}, "instances: must not be empty"),
        ({"instances": [[1, 2], [3]]}, "instances[1]: must have the shape of the first instance [2]"),
        ({"instances": [1, "a"]}, "instances: mixes int and str values"),
    ]
    for body, message in cases:
        status, answer = await _predict(http, url, body)
        assert (status, answer["error"]) == (400, message)
    async with http.post(url, data=b"{nope", headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"].startswith("request body: invalid JSON")


async def test_v1_unknown_model_is_404_and_replica_errors_pass_through(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """An unknown model is 404 naming it; a replica's refusal (wrong feature count) keeps its status."""
    status, body = await _predict(http, f"{gateway.http_url}/v1/models/ghost:predict", {"instances": [[1.0]]})
    assert status == 404
    assert "ghost" in body["error"]
    v2 = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}]}
    async with http.post(f"http://{mlserver.http}/v2/models/iris_1/infer", json=v2) as direct:
        expected = (direct.status, await direct.read())
    async with http.post(
        f"{gateway.http_url}/v1/models/iris:predict", json={"instances": [[1.0, 2.0, 3.0]]}
    ) as resp:
        got = (resp.status, await resp.read())
    assert expected[0] >= 400
    assert got == expected


# ---- the mapping ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("instances", "shape", "datatype", "data"),
    [
        ([[1.0, 2.0], [3.0, 4.0]], (2, 2), "FP64", [1.0, 2.0, 3.0, 4.0]),
        ([[1, 2], [3, 4.5]], (2, 2), "FP64", [1, 2, 3, 4.5]),
        ([1, 2, 3], (3,), "INT64", [1, 2, 3]),
        ([[True], [False]], (2, 1), "BOOL", [True, False]),
        (["a", "b"], (2,), "BYTES", ["a", "b"]),
        ([[[1], [2]], [[3], [4]]], (2, 2, 1), "INT64", [1, 2, 3, 4]),
        ([[], []], (2, 0), "FP64", []),
    ],
)
def test_instances_become_one_tensor(
    instances: list[Any], shape: tuple[int, ...], datatype: str, data: list[Any]
) -> None:
    """Shape is [rows, *row shape], the datatype follows the scalars, data is row-major flat."""
    tensor = parse_instances(orjson.dumps({"instances": instances}))
    assert (tensor.shape, tensor.datatype, tensor.data) == (shape, datatype, data)
    assert tensor.v2_request("x")["inputs"][0]["name"] == "x"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1]", "request body: must be a JSON object"),
        (b'{"instances": 3}', "instances: must be a list"),
        (b'{"instances": [{"a": 1}]}', "instances[0]: must be a number, boolean, string or list"),
        (b'{"instances": [[1], [[2]]]}', "instances[1][0]: has more dimensions than the first instance"),
        (b'{"instances": [true, 1]}', "instances: mixes bool and int values"),
        (b'{"instances": [null]}', "instances[0]: must be a number, boolean, string or list"),
    ],
)
def test_bad_instances_name_the_field(body: bytes, message: str) -> None:
    """Every refused body is an InvalidError whose text starts with the field."""
    with pytest.raises(InvalidError) as err:
        parse_instances(body)
    assert str(err.value) == message


def test_input_name_comes_from_metadata_with_exactly_one_input() -> None:
    """One declared input gives its name; none or several give "input-0"."""
    assert input_name({"inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 4]}]}) == "features"
    assert input_name({"inputs": []}) == "input-0"
    assert input_name({"inputs": [{"name": "a"}, {"name": "b"}]}) == "input-0"
    assert input_name({"name": "m"}) == "input-0"


def test_predictions_are_the_first_output_by_rows() -> None:
    """The first output's data is reshaped by its shape; other outputs are dropped."""
    response = {
        "outputs": [
            {"name": "p", "shape": [2, 2], "datatype": "FP64", "data": [0.1, 0.9, 0.8, 0.2]},
            {"name": "q", "shape": [2], "datatype": "INT64", "data": [1, 0]},
        ]
    }
    assert predictions(response) == {"predictions": [[0.1, 0.9], [0.8, 0.2]]}
    assert predictions({"outputs": [{"shape": [3], "data": [1, 2, 3]}]}) == {"predictions": [1, 2, 3]}
    assert predictions({"outputs": [{"shape": [2, 1], "data": [[1], [2]]}]}) == {"predictions": [1, 2]}
    with pytest.raises(PermanentError):
        predictions({"outputs": []})
