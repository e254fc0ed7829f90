"""KServe's own REST client (its separate venv) against the gateway's V1 and V2 routes."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelplane.services.gateway.app import App
from tests.gateway.conftest import SERVER_MODEL_NAME, MLServerReplica
from tests.helpers.kserve_client import default_cache_dir, kserve_infer, kserve_python


@pytest.fixture(scope="module")
def kserve() -> Path:
    found = kserve_python(default_cache_dir())
    if found is None:
        pytest.skip("KServe's client venv is not made: run python -m tests.helpers.kserve_client")
    return found


async def test_kserve_v1_predict(kserve: Path, gateway: App, mlserver: MLServerReplica) -> None:
    """InferenceRESTClient with protocol v1 gets one prediction per instance from /v1/models/iris:predict,
    flat as KServe's own sklearn server answers (MLServer's [N, 1] column is N values)."""
    body = {"instances": mlserver.iris.X[:4].tolist()}
    answer = await kserve_infer(kserve, gateway.http_url, "iris", body, "v1")
    assert answer == {"predictions": mlserver.iris.expected[:4].tolist()}


async def test_kserve_v2_infer(kserve: Path, gateway: App, mlserver: MLServerReplica) -> None:
    """InferenceRESTClient with protocol v2 gets the trained predictions from /v2/models/iris/infer."""
    answer = await kserve_infer(kserve, gateway.http_url, "iris", mlserver.iris.v2_request(rows=4), "v2")
    assert answer["model_name"] == SERVER_MODEL_NAME
    assert answer["outputs"][0]["data"] == mlserver.iris.expected[:4].tolist()
