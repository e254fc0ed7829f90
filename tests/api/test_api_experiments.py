"""Experiments through the api (handler and REST) against a real nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.types import Experiment
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2, state_pb2
from modelplane.services.api.app import App
from modelplane.services.api.handler import ControlHandler
from tests.helpers.auth import ADMIN, bearer


def experiment(name: str = "ab", default: str | None = "iris", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"candidates": [{"name": "iris", "weight": 80}, {"name": "iris2", "weight": 20}]}
    if default is not None:
        body["default"] = default
    body.update(spec)
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": body,
    }


def model(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {"storageUri": f"file:///models/{name}"},
    }


@pytest.fixture
async def handler(js: JetStreamContext, nc: NATS) -> AsyncIterator[ControlHandler]:
    handler = await ControlHandler.open(js, nc)
    yield handler
    await handler.close()


async def test_experiment_is_stored_in_its_bucket_and_versioned(
    handler: ControlHandler, js: JetStreamContext
) -> None:
    """An applied experiment lands in KV_EXPERIMENTS; re-applying it unchanged writes nothing."""
    stored, outcome = await handler.apply_manifest(ADMIN, experiment())
    assert outcome == "created"
    assert isinstance(stored, Experiment)
    bucket = await TypedBucket.open(js, subjects.KV_EXPERIMENTS, resources_pb2.Experiment)
    found = await bucket.try_get("ab")
    assert found is not None
    assert [c.name for c in found.value.spec.candidates] == ["iris", "iris2"]
    _, again = await handler.apply_manifest(ADMIN, experiment())
    assert again == "unchanged"
    assert [e.meta.name for e in await handler.list(ADMIN, "Experiment")] == ["ab"]
    assert await handler.delete(ADMIN, "Experiment", "ab") == "deleted"
    assert await bucket.try_get("ab") is None


async def test_a_model_is_the_baseline_of_at_most_one_experiment(handler: ControlHandler) -> None:
    """A second experiment with the same default is refused naming spec.default; its update is not."""
    await handler.apply_manifest(ADMIN, experiment("ab"))
    with pytest.raises(InvalidError) as caught:
        await handler.apply_manifest(ADMIN, experiment("other"))
    assert caught.value.field == "spec.default"
    assert "baseline of experiment ab" in caught.value.message
    # The same experiment may be re-applied with changes; one without a default is no baseline.
    _, outcome = await handler.apply_manifest(
        ADMIN, experiment("ab", mirror={"name": "iris3", "percent": 10})
    )
    assert outcome == "configured"
    _, outcome = await handler.apply_manifest(ADMIN, experiment("other", default=None))
    assert outcome == "created"


async def test_experiment_status_follows_its_members_models(
    handler: ControlHandler, js: JetStreamContext
) -> None:
    """Ready only when every candidate and the mirror is ModelAvailable; the reason names the rest."""
    await handler.apply_manifest(ADMIN, model("iris"))
    await handler.apply_manifest(ADMIN, experiment(mirror={"name": "iris3", "percent": 10}))
    statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    await statuses.put(
        subjects.status_key("Model", "iris"),
        state_pb2.ResourceStatus(kind="Model", name="iris", state="ModelAvailable"),
    )
    status = await handler.get_status(ADMIN, "Experiment", "ab")
    assert status.state == "ExperimentNotReady"
    assert "candidate iris2 is not found" in status.reason
    assert "mirror iris3" in status.reason
    assert (status.available_replicas, status.total_replicas) == (1, 3)
    for name in ("iris2", "iris3"):
        await statuses.put(
            subjects.status_key("Model", name),
            state_pb2.ResourceStatus(kind="Model", name=name, state="ModelAvailable"),
        )
    ready = await handler.get_status(ADMIN, "Experiment", "ab")
    assert ready.state == "ExperimentReady"
    assert [s.name for s in await handler.list_status(ADMIN, "Experiment")] == ["ab"]


async def test_rest_applies_lists_and_deletes_experiments(api_app: App, admin_token: str) -> None:
    """POST /v1/apply takes an Experiment; /v1/experiments lists it; a bad one is 400 naming the field."""
    async with aiohttp.ClientSession(headers=bearer(admin_token)) as http:
        async with http.post(f"{api_app.http_url}/v1/apply", json=experiment()) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["items"][0]["kind"] == "Experiment"
        async with http.get(f"{api_app.http_url}/v1/experiments") as resp:
            items = (await resp.json())["items"]
        assert items[0]["spec"]["candidates"][1] == {"name": "iris2", "weight": 20}
        async with http.post(f"{api_app.http_url}/v1/apply", json=experiment("bad", default="nope")) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"].startswith("spec.default:")
        async with http.get(f"{api_app.http_url}/v1/experiments/ab/status") as resp:
            assert (await resp.json())["state"] == "ExperimentNotReady"
        async with http.delete(f"{api_app.http_url}/v1/experiments/ab") as resp:
            assert (await resp.json())["outcome"] == "deleted"


async def test_experiment_over_pipelines_follows_the_pipelines_states(
    handler: ControlHandler, js: JetStreamContext
) -> None:
    """resourceType pipeline: Ready when every candidate pipeline is PipelineReady."""
    await handler.apply_manifest(
        ADMIN,
        {
            "apiVersion": "mlops.seldon.io/v1alpha1",
            "kind": "Pipeline",
            "metadata": {"name": "iris"},
            "spec": {"steps": [{"name": "m"}]},
        },
    )
    await handler.apply_manifest(ADMIN, experiment(resourceType="pipeline"))
    status = await handler.get_status(ADMIN, "Experiment", "ab")
    assert status.state == "ExperimentNotReady"
    assert "candidate iris is PipelineCreating" in status.reason
    assert "candidate iris2 is not found (no such pipeline)" in status.reason
