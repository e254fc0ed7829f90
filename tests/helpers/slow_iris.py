"""A real iris sklearn model that takes its time: MLServer's SKLearnModel behind an async sleep.

Why: the autoscaler sizes a model on the requests in flight at the gateway; the iris classifier
answers in a few milliseconds, so a handful of callers would leave almost nothing in flight at
the instant a load report is taken. Sleeping before predicting keeps every caller's request in
flight for most of its round trip, so N callers read as about N in flight, steadily.

The runtime is a module in the model folder (MLServer imports it from there), named so it cannot
clash with another custom runtime in MLServer's import cache.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.iris import IrisModel, build_iris_model

_MODULE = "slow_iris_runtime"

_RUNTIME = """
import asyncio

from mlserver.types import InferenceRequest, InferenceResponse
from mlserver_sklearn import SKLearnModel

DELAY_SECONDS = {delay!r}


class SlowSKLearnModel(SKLearnModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        await asyncio.sleep(DELAY_SECONDS)
        return await super().predict(payload)
"""


def build_slow_iris_model(folder: Path, delay_seconds: float, name: str = "iris") -> IrisModel:
    """An iris model folder (as ``build_iris_model``) whose every answer takes ``delay_seconds``."""
    iris = build_iris_model(folder, name)
    (folder / f"{_MODULE}.py").write_text(_RUNTIME.format(delay=delay_seconds))
    settings_path = folder / "model-settings.json"
    settings = json.loads(settings_path.read_text())
    settings["implementation"] = f"{_MODULE}.SlowSKLearnModel"
    settings_path.write_text(json.dumps(settings))
    return iris
