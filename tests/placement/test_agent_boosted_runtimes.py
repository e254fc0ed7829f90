"""MLServer's xgboost and lightgbm runtimes through the agent, and a runtime that is not installed.

Real NATS, the real storage service and a real MLServer the agent launches; the models are
trained in the test and carry no model-settings.json, so the requirement picks the runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from nats.aio.client import Client as NATS

from modelplane.libs import subjects
from modelplane.proto import agent_pb2, resources_pb2
from modelplane.services.placement.app import App as PlacementApp
from modelplane.services.placement.runtimes.mlserver_implementations import (
    IMPLEMENTATIONS,
    Implementation,
    installed_modules,
)
from tests.helpers.boosted_models import build_lightgbm_model, build_xgboost_model
from tests.helpers.iris import IrisModel
from tests.placement.conftest import Reports

LOAD_OUTCOMES = {agent_pb2.OUTCOME_LOADED, agent_pb2.OUTCOME_LOAD_FAILED}


async def _load(
    nc: NATS, reports: Reports, model: str, uri: str, requirements: Sequence[str]
) -> agent_pb2.ModelReplicaReport:
    """Send the agent a load command for version 1 of ``model``; return its final report."""
    spec = resources_pb2.ModelSpec(storage_uri=uri, requirements=requirements)
    command = agent_pb2.LoadModelCommand(model=model, version=1, spec=spec)
    msg = await nc.request(subjects.agent_command("mlserver", 0, "load"), command.SerializeToString(), 5)
    reply = agent_pb2.CommandReply()
    reply.ParseFromString(msg.data)
    assert reply.accepted, reply.reason
    return await reports.wait_for(model, LOAD_OUTCOMES)


async def _infer(agent: PlacementApp, server_model: str, model: IrisModel, rows: int) -> np.ndarray:
    """The first output of a V2 inference call on the agent's MLServer, shaped as it says."""
    assert agent.runtime is not None
    base = f"http://{agent.runtime.endpoints.local_http}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/v2/models/{server_model}/infer", json=model.v2_request(rows=rows)) as resp,
    ):
        assert resp.status == 200, await resp.text()
        output = (await resp.json())["outputs"][0]
    return np.array(output["data"]).reshape(output["shape"])


@pytest.mark.parametrize("file_name", ["model.bst", "model.json"])
async def test_xgboost_model_answers_inference(
    mlserver_agent: PlacementApp, nc: NATS, reports: Reports, tmp_path: Path, file_name: str
) -> None:
    """An XGBClassifier file (KServe's model.bst, or model.json) loads with requirement xgboost
    and predicts the classes it predicted in training."""
    xgb_model = build_xgboost_model(tmp_path / "artifacts" / "xgb", file_name)
    loaded = await _load(nc, reports, "xgb", str(xgb_model.path), ["xgboost"])
    assert loaded.outcome == agent_pb2.OUTCOME_LOADED, loaded.message
    predicted = await _infer(mlserver_agent, "xgb_1", xgb_model, rows=6)
    assert np.array_equal(predicted.ravel(), xgb_model.expected[:6])


async def test_lightgbm_model_answers_inference(
    mlserver_agent: PlacementApp, nc: NATS, reports: Reports, tmp_path: Path
) -> None:
    """A LightGBM booster (model.bst) loads with requirement lightgbm and answers its own class
    probabilities."""
    lgb_model = build_lightgbm_model(tmp_path / "artifacts" / "lgb")
    loaded = await _load(nc, reports, "lgb", str(lgb_model.path), ["lightgbm"])
    assert loaded.outcome == agent_pb2.OUTCOME_LOADED, loaded.message
    predicted = await _infer(mlserver_agent, "lgb_1", lgb_model, rows=6)
    assert predicted.shape == (6, 3)
    assert np.allclose(predicted, lgb_model.expected[:6])


def _absent_runtime() -> Implementation:
    """A known runtime whose package this interpreter really lacks (mlflow, an extra, first)."""
    installed = installed_modules()
    absent = [i for i in IMPLEMENTATIONS if i.module not in installed]
    if not absent:
        pytest.skip("every known MLServer runtime is installed in this environment")
    return absent[0]


async def test_missing_runtime_fails_the_load_naming_what_to_install(
    mlserver_agent: PlacementApp, nc: NATS, reports: Reports, tmp_path: Path
) -> None:
    """A model whose requirement picks a runtime that is not installed fails to load with a
    reason naming the package (the extra), and leaves no folder behind."""
    runtime = _absent_runtime()
    artifact = tmp_path / "artifacts" / "needs-extra"
    artifact.mkdir(parents=True)
    (artifact / "MLmodel").write_text("flavors: {}\n")
    failed = await _load(nc, reports, "needs-extra", str(artifact), [runtime.requirement])
    assert failed.outcome == agent_pb2.OUTCOME_LOAD_FAILED
    assert failed.message == (
        f"the {runtime.requirement} runtime ({runtime.implementation}) is not installed: {runtime.install}"
    )
    if runtime.requirement == "mlflow":
        assert failed.message.endswith("pip install 'modelplane[mlflow]'")
    assert not (mlserver_agent.state_dir / "models" / "needs-extra_1").exists()
