"""Seldon Core v1's paths on the gateway (plain HTTP, as Seldon clients send) against a real
MLServer serving the sklearn iris model as model "iris": the Seldon protocol, and V2 / KServe V1
under a deployment's path, with experiments, auth and metrics as on every other route."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from nats.js import JetStreamContext

from modelplane.libs.auth.tokens import TokenStore
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.resources.types import Experiment, ExperimentCandidate, ExperimentSpec, Meta
from modelplane.services.gateway.app import App
from modelplane.services.gateway.seldon_protocol import replica_error_text
from tests.gateway.conftest import MLServerReplica, eventually, iris_route, put_route, start_gateway
from tests.gateway.test_experiments_gateway import put_experiment

PATH = "/seldon/default/iris/api/v1.0/predictions"


async def _post(
    http: aiohttp.ClientSession, url: str, body: object, headers: dict[str, str] | None = None
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    async with http.post(
        url, data=orjson.dumps(body), headers={"Content-Type": "application/json", **(headers or {})}
    ) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


def _labels(mlserver: MLServerReplica, rows: int) -> list[int]:
    # MLServer's sklearn runtime answers predict as a column [rows, 1]: flat, as Seldon's servers did.
    return [int(label) for label in mlserver.iris.expected[:rows].tolist()]


def _failure(answer: Any, code: int) -> str:
    """The info of a Seldon failure message, after checking its shape."""
    status = answer["status"]
    assert (status["code"], status["status"]) == (code, "FAILURE"), answer
    assert isinstance(status["reason"], str)
    assert status["reason"]
    return str(status["info"])


# ---- the Seldon protocol ----------------------------------------------------------------------------
async def test_ndarray_prediction_on_the_deployment_path(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """ndarray in, ndarray out with Seldon's t:0 column name, the puid in meta and in the header."""
    rows = mlserver.iris.X[:3].tolist()
    status, answer, headers = await _post(
        http, gateway.http_url + PATH, {"data": {"ndarray": rows}, "meta": {"tags": {"x": "y"}}}
    )
    assert status == 200, answer
    assert answer["data"] == {"names": [], "ndarray": _labels(mlserver, 3)}
    assert answer["meta"]["tags"] == {"x": "y"}
    assert answer["meta"]["puid"]
    assert headers["seldon-puid"] == answer["meta"]["puid"]


async def test_tensor_prediction_and_the_puid_header(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """A tensor request gets a tensor answer; the request's Seldon-Puid is echoed."""
    X = mlserver.iris.X[:2]
    body = {"data": {"tensor": {"shape": list(X.shape), "values": X.flatten().tolist()}}}
    status, answer, headers = await _post(http, gateway.http_url + PATH, body, {"Seldon-Puid": "abc"})
    assert status == 200, answer
    expected = _labels(mlserver, 2)
    assert answer == {
        "data": {"names": [], "tensor": {"shape": [2], "values": expected}},
        "meta": {"puid": "abc"},
    }
    assert headers["seldon-puid"] == "abc"


async def test_form_encoded_json_and_the_short_path(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """SeldonClient's form-encoded json=... body, and its /seldon/<name>/... path without namespace."""
    message = orjson.dumps({"data": {"ndarray": mlserver.iris.X[:1].tolist()}}).decode()
    async with http.post(gateway.http_url + PATH, data={"json": message}) as resp:
        assert resp.status == 200
        assert (await resp.json())["data"]["ndarray"] == _labels(mlserver, 1)
    status, answer, _ = await _post(
        http, gateway.http_url + "/seldon/iris/api/v1.0/predictions", orjson.loads(message)
    )
    assert (status, answer["data"]["ndarray"]) == (200, _labels(mlserver, 1))


async def test_bare_path_names_the_deployment_by_header(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """/api/v1.0/predictions needs seldon-model (400 naming it without); seldon-namespace other
    than default is 404; on a deployment's path the header does not override the path."""
    url = gateway.http_url + "/api/v1.0/predictions"
    body = {"data": {"ndarray": mlserver.iris.X[:1].tolist()}}
    status, answer, _ = await _post(http, url, body, {"seldon-model": "iris"})
    assert (status, answer["data"]["ndarray"]) == (200, _labels(mlserver, 1))
    status, answer, _ = await _post(http, url, body)
    assert status == 400
    assert _failure(answer, 400).startswith("seldon-model: is required")
    status, answer, _ = await _post(http, url, body, {"seldon-model": "iris", "seldon-namespace": "prod"})
    assert status == 404
    assert "prod--iris" in _failure(answer, 404)
    status, answer, _ = await _post(http, gateway.http_url + PATH, body, {"seldon-model": "ghost"})
    assert status == 200, answer


async def test_unknown_namespace_or_deployment_is_a_seldon_404(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """Another namespace and an unknown name are 404 in Seldon's failure shape, naming them."""
    body = {"data": {"ndarray": [[1.0]]}}
    status, answer, _ = await _post(http, gateway.http_url + "/seldon/prod/iris/api/v1.0/predictions", body)
    assert status == 404
    assert "prod--iris" in _failure(answer, 404)
    status, answer, _ = await _post(
        http, gateway.http_url + "/seldon/default/ghost/api/v1.0/predictions", body
    )
    assert status == 404
    assert "ghost" in _failure(answer, 404)


async def test_bad_messages_are_400_naming_the_field(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """Not JSON, no data, ragged ndarray, ndarray and tensor, a short tensor: 400 before any call."""
    url = gateway.http_url + PATH
    cases: list[tuple[object, str]] = [
        ({"meta": {}}, "data: is required"),
        (
            {"data": {"ndarray": [[1, 2], [3, 4], [5]]}},
            "data.ndarray[2]: must have the shape of the first row [2]",
        ),
        (
            {"data": {"ndarray": [[1]], "tensor": {"shape": [1], "values": [1]}}},
            "data: has both ndarray and tensor",
        ),
        (
            {"data": {"tensor": {"shape": [2, 4], "values": [1, 2]}}},
            "data.tensor.values: has 2 values but shape [2, 4] holds 8",
        ),
        ({"jsonData": {"a": 1}}, "jsonData: is not supported"),
    ]
    for body, message in cases:
        status, answer, _ = await _post(http, url, body)
        assert status == 400, answer
        assert _failure(answer, 400).startswith(message)
    async with http.post(url, data=b"{nope", headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        assert _failure(await resp.json(), 400).startswith("request body: invalid JSON")


async def test_replica_refusal_keeps_its_status_in_seldon_shape(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """A model error (three features for a four-feature model) keeps MLServer's status and its
    message (MLServer answers this one as plain text)."""
    v2 = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}]}
    async with http.post(f"http://{mlserver.http}/v2/models/iris_1/infer", json=v2) as direct:
        expected_status, expected = direct.status, await direct.read()
    status, answer, _ = await _post(http, gateway.http_url + PATH, {"data": {"ndarray": [[1.0, 2.0, 3.0]]}})
    assert expected_status >= 400
    assert status == expected_status
    assert _failure(answer, status) == replica_error_text(expected)


async def test_seldon_requests_are_counted_under_their_own_protocol(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """/metrics counts Seldon predictions per model with protocol="seldon" and the result code."""
    body = {"data": {"ndarray": mlserver.iris.X[:1].tolist()}}
    for _ in range(2):
        assert (await _post(http, gateway.http_url + PATH, body))[0] == 200
    assert (await _post(http, gateway.http_url + PATH, {"data": {}}))[0] == 400
    async with http.get(f"{gateway.http_url}/metrics") as resp:
        text = await resp.text()

    def count(code: str) -> float:
        found = re.search(
            rf'modelplane_gateway_requests_total\{{code="{code}",model="iris",protocol="seldon"\}} (\S+)',
            text,
        )
        assert found, text
        return float(found.group(1))

    assert (count("200"), count("400")) == (2.0, 1.0)


# ---- V2 and KServe V1 under the deployment's path ---------------------------------------------------
async def test_v2_and_v1_under_the_path_go_to_the_deployment(
    gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """Whatever inner model name a client uses, the deployment <name> answers: infer, ready,
    metadata (V2) and predict, status (KServe V1)."""
    base = gateway.http_url + "/seldon/default/iris"
    async with http.post(f"{base}/v2/models/classifier/infer", json=mlserver.iris.v2_request(2)) as resp:
        assert resp.status == 200
        outputs = (await resp.json())["outputs"]
        assert outputs[0]["data"] == mlserver.iris.expected[:2].tolist()
    async with http.get(f"{base}/v2/models/classifier/ready") as resp:
        assert (resp.status, await resp.json()) == (200, {"name": "iris", "ready": True})
    async with http.get(f"{base}/v2/models/classifier") as resp:
        assert resp.status == 200
        assert (await resp.json())["name"] == "iris_1"
    status, answer, _ = await _post(
        http, f"{base}/v1/models/classifier:predict", {"instances": mlserver.iris.X[:2].tolist()}
    )
    assert (status, answer) == (200, {"predictions": _labels(mlserver, 2)})
    async with http.get(f"{base}/v1/models/classifier") as resp:
        assert await resp.json() == {"name": "iris", "ready": True}
    async with http.post(
        gateway.http_url + "/seldon/other/iris/v2/models/x/infer", json=mlserver.iris.v2_request(1)
    ) as resp:
        assert resp.status == 404
        assert "other--iris" in (await resp.json())["error"]


async def test_experiment_with_the_deployment_as_default_splits_it(
    js: JetStreamContext, nats_server: EmbeddedNats, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """An Experiment whose default is the deployment's name routes its Seldon requests (and the
    V1 and V2 ones under its path) to the candidates, naming the route taken; also when no model
    has the default's name."""
    for model in ("iris-a", "iris-b"):
        await put_route(js, iris_route(mlserver, model=model))
    app = await start_gateway(nats_server, hold_seconds=0.5)
    try:
        experiment = Experiment(
            meta=Meta(name="ab"),
            spec=ExperimentSpec(
                candidates=(ExperimentCandidate("iris-a", 50), ExperimentCandidate("iris-b", 50)),
                default="front",
            ),
        )
        await put_experiment(js, experiment)

        async def ready() -> bool:
            return bool(app.experiments.get("ab")) and all(app.routes.get(m) for m in ("iris-a", "iris-b"))

        await eventually(ready, 10, "the experiment and routes in the gateway")
        body = {"data": {"ndarray": mlserver.iris.X[:1].tolist()}}
        seen: set[str] = set()
        for _ in range(30):
            status, answer, headers = await _post(
                http, app.http_url + "/seldon/default/front/api/v1.0/predictions", body
            )
            assert (status, answer["data"]["ndarray"]) == (200, _labels(mlserver, 1))
            seen.add(headers["x-seldon-route"])
        assert seen == {":iris-a_1:", ":iris-b_1:"}
        status, answer, headers = await _post(
            http,
            app.http_url + "/seldon/default/front/v1/models/m:predict",
            {"instances": mlserver.iris.X[:1].tolist()},
            {"x-seldon-route": ":iris-b_1:"},
        )
        assert (status, headers["x-seldon-route"]) == (200, ":iris-b_1:")
        async with http.post(
            f"{app.http_url}/seldon/default/front/v2/models/m/infer", json=mlserver.iris.v2_request(1)
        ) as resp:
            assert resp.status == 200
            assert resp.headers["x-seldon-route"] in seen
    finally:
        await app.close()


async def test_auth_refusals_have_seldon_shape(
    js: JetStreamContext, nats_server: EmbeddedNats, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """With tokens required, a Seldon prediction without one is a Seldon-shaped 401 with the
    challenge; with an inference token it is served."""
    token = await (await TokenStore.open(js)).create("client", "inference")
    await put_route(js, iris_route(mlserver))
    app = await start_gateway(nats_server, hold_seconds=0.5, auth="required")
    try:
        auth = {"Authorization": f"Bearer {token}"}

        async def ready() -> bool:
            async with http.get(f"{app.http_url}/v2/models/iris/ready", headers=auth) as r:
                return r.status == 200

        await eventually(ready, 10, "the gateway to serve iris")
        body = {"data": {"ndarray": mlserver.iris.X[:1].tolist()}}
        status, answer, headers = await _post(http, app.http_url + PATH, body)
        assert status == 401
        _failure(answer, 401)
        assert headers["www-authenticate"].startswith("Bearer")
        status, answer, _ = await _post(http, app.http_url + PATH, body, auth)
        assert (status, answer["data"]["ndarray"]) == (200, _labels(mlserver, 1))
    finally:
        await app.close()
