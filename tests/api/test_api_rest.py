"""The REST adapter over a real aiohttp server and nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from modelplane.services.api.app import App
from tests.helpers.auth import bearer

SELDON_YAML = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: iris
spec:
  storageUri: gs://seldon-models/scv2/samples/mlserver_1.3.5/iris-sklearn
  requirements:
  - sklearn
---
apiVersion: modelplane.io/v1alpha1
kind: Server
metadata:
  name: mlserver
spec:
  serverConfig: mlserver
"""


@pytest.fixture
async def http(api_app: App, admin_token: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=api_app.http_url, headers=bearer(admin_token)) as session:
        yield session


async def test_apply_yaml_then_get_list_status_delete(http: aiohttp.ClientSession) -> None:
    """Multi-document YAML applies each resource; GET, list, status and DELETE follow."""
    async with http.post("/v1/apply", data=SELDON_YAML, headers={"Content-Type": "application/yaml"}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert [(i["kind"], i["name"], i["outcome"]) for i in body["items"]] == [
        ("Model", "iris", "created"),
        ("Server", "mlserver", "created"),
    ]
    async with http.get("/v1/models/iris") as resp:
        model = await resp.json()
    assert model["apiVersion"] == "modelplane.io/v1alpha1"
    assert model["metadata"]["generation"] == 1
    assert model["spec"]["requirements"] == ["sklearn"]
    async with http.get("/v1/models") as resp:
        assert [m["metadata"]["name"] for m in (await resp.json())["items"]] == ["iris"]
    async with http.get("/v1/servers/mlserver/status") as resp:
        assert (await resp.json())["state"] == "ServerNotReady"
    async with http.get("/v1/servers/mlserver/replicas") as resp:
        assert (await resp.json())["items"] == []
    async with http.delete("/v1/models/iris") as resp:
        assert (await resp.json())["outcome"] == "deleted"
    async with http.get("/v1/models/iris") as resp:
        assert resp.status == 404
        assert await resp.json() == {"error": "Model 'iris' not found"}


async def test_apply_json_object_and_list(http: aiohttp.ClientSession) -> None:
    """A JSON object or list is applied; re-applying the same object is unchanged."""
    doc = {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "a"},
        "spec": {"storageUri": "/m"},
    }
    async with http.post("/v1/apply", json=doc) as resp:
        assert (await resp.json())["items"][0]["outcome"] == "created"
    async with http.post("/v1/apply", json=[doc]) as resp:
        assert (await resp.json())["items"][0]["outcome"] == "unchanged"


async def test_errors_are_json_naming_the_field(http: aiohttp.ClientSession) -> None:
    """Invalid input answers 400 with {"error": "<field>: <reason>"}; bad YAML names the line."""
    doc = {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "a"},
        "spec": {"storageUri": "/m", "replicas": -1},
    }
    async with http.post("/v1/apply", json=doc) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "spec.replicas: must be >= 0, got -1"
    async with http.post("/v1/apply", data="a: [1,\n", headers={"Content-Type": "application/yaml"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"].startswith("body: invalid YAML at line")
    async with http.get("/v1/pods") as resp:
        assert resp.status == 400
        assert (await resp.json())["error"].startswith("kind: unknown kind 'pods'")
    async with http.get("/v1/health") as resp:
        assert await resp.json() == {"status": "ok"}


async def test_scale_over_rest(http: aiohttp.ClientSession) -> None:
    """POST /v1/models/{name}/scale sets the replicas; a body without a whole number is a 400
    naming ``replicas``."""
    manifest = {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Server",
        "metadata": {"name": "pool"},
        "spec": {"serverConfig": "mlserver", "replicas": 1},
    }
    async with http.post("/v1/apply", json=manifest) as created:
        assert created.status == 200
    async with http.post("/v1/servers/pool/scale", json={"replicas": 2, "reason": "test"}) as scaled:
        assert scaled.status == 200
        body = await scaled.json()
    assert (body["outcome"], body["resource"]["spec"]["replicas"]) == ("configured", 2)
    async with http.post("/v1/servers/pool/scale", json={"replicas": "two"}) as bad:
        assert bad.status == 400
        assert "replicas" in await bad.text()
