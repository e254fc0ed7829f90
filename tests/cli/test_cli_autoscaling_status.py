"""`modelplane model status` shows the autoscaler's current/desired replicas and its last decision.

The api and the status service run in-process on a real nats-server; the autoscaler's record is
written to KV_AUTOSCALER as the autoscaler does.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from modelplane.cli.render import autoscaling_summary, status_summary
from modelplane.libs import states, subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.store import TypedBucket
from modelplane.proto import state_pb2
from modelplane.services.status.app import StatusApp
from modelplane.services.status.settings import StatusSettings

from .harness import Cli
from .test_cli_load_progress import eventually

AUTOSCALED_IRIS = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata:
  name: iris
spec:
  storageUri: "s3://models/iris"
  requirements: [sklearn]
  replicas: 2
  minReplicas: 1
  maxReplicas: 4
  autoscaling:
    targetRequests: 2
"""
AT = "2026-11-24T10:01:02Z"


def scaling(current: int, desired: int, reason: str, at: str = AT) -> state_pb2.ModelScaling:
    return state_pb2.ModelScaling(
        model="iris", current_replicas=current, desired_replicas=desired, reason=reason, at=at
    )


# ---- pure rendering ------------------------------------------------------------------------


def test_autoscaling_summary_shows_the_change_reason_and_time() -> None:
    """A change reads ``current -> desired replicas (reason, at time)``; no change, one count."""
    assert autoscaling_summary(scaling(2, 4, "avg concurrency 7.5 / target 2 -> 4")) == (
        f"2 -> 4 replicas (avg concurrency 7.5 / target 2 -> 4, at {AT})"
    )
    assert autoscaling_summary(scaling(2, 2, "autoscaling disabled")) == (
        f"2 replicas (autoscaling disabled, at {AT})"
    )
    assert autoscaling_summary(scaling(1, 0, "", at="")) == "1 -> 0 replicas"


def test_status_summary_has_an_autoscaling_line_only_when_autoscaled() -> None:
    """The autoscaling line follows the replica count; a model without a record has none."""
    status = state_pb2.ResourceStatus(
        kind="Model", name="iris", state="ModelAvailable", available_replicas=2, total_replicas=2
    )
    assert "autoscaling" not in status_summary(status)
    status.autoscaling.CopyFrom(scaling(2, 4, "avg concurrency 7.5 / target 2 -> 4"))
    assert status_summary(status).splitlines()[:3] == [
        "model/iris: ModelAvailable",
        "  available: 2/2",
        f"  autoscaling: 2 -> 4 replicas (avg concurrency 7.5 / target 2 -> 4, at {AT})",
    ]


# ---- through the api and the status service ------------------------------------------------


@pytest.fixture
async def status_app(nats_server: EmbeddedNats) -> AsyncIterator[StatusApp]:
    app = StatusApp(StatusSettings.model_validate({"nats_url": nats_server.url}))
    await app.start()
    try:
        yield app
    finally:
        await app.close()


async def test_model_status_shows_the_last_decision(
    run_cli: Cli, status_app: StatusApp, js: JetStreamContext, tmp_path: Path
) -> None:
    """After the autoscaler records a decision, `model status` prints it and -o json carries it."""
    manifest = tmp_path / "iris.yaml"
    manifest.write_text(AUTOSCALED_IRIS)
    loaded = await run_cli("model", "load", "--no-wait", "-f", str(manifest))
    assert loaded.exit_code == 0, loaded.output
    statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)

    async def progressing() -> bool:
        found = await statuses.try_get(subjects.status_key("Model", "iris"))
        return found is not None and found.value.state == states.MODEL_PROGRESSING

    await eventually(progressing)
    before = await run_cli("model", "status", "iris")
    assert before.exit_code == 0, before.output
    assert "autoscaling" not in before.stdout

    records = await TypedBucket.open(js, subjects.KV_AUTOSCALER, state_pb2.ModelScaling)
    await records.put("iris", scaling(2, 4, "avg concurrency 7.5 / target 2 -> 4"))

    async def recorded() -> bool:
        found = await statuses.try_get(subjects.status_key("Model", "iris"))
        return found is not None and found.value.HasField("autoscaling")

    await eventually(recorded)
    shown = await run_cli("model", "status", "iris")
    assert shown.exit_code == 0, shown.output
    assert f"  autoscaling: 2 -> 4 replicas (avg concurrency 7.5 / target 2 -> 4, at {AT})" in (
        shown.stdout.splitlines()
    )
    as_json = await run_cli("model", "status", "iris", "-o", "json")
    assert json.loads(as_json.stdout)["autoscaling"] == {
        "model": "iris",
        "currentReplicas": 2,
        "desiredReplicas": 4,
        "reason": "avg concurrency 7.5 / target 2 -> 4",
        "at": AT,
    }
