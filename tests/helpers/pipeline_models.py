"""Small custom MLServer models for pipeline tests, written into a model repository.

Each model is a real MLServer custom runtime (an ``MLModel`` subclass in its own module, named
after the model so MLServer's import cache never mixes two of them up):

- ``add``: like Seldon's ``tfsimple``: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1.
- ``router``: emits its INPUT0 as OUTPUT0 when its sum is >= 0, else as OUTPUT1 (never both):
  the conditional pipeline branches on which one it emits.
- ``double`` / ``negate``: OUTPUT0 = 2 x / -x of their first input tensor.
- ``increment``: OUTPUT0 = INPUT0 + 1 while every value is below ``LIMIT`` (3), else DONE = INPUT0:
  a cycle runs it until it emits DONE.
- ``batchsize``: OUTPUT0 = INPUT0, and BATCH = the first dimension it was called with, one row
  per input row: what a micro-batched call looked like.
- ``slow``: OUTPUT0 = its first input, after one second (a request still running when its
  worker is killed).
- ``fail``: always raises (MLServer answers with an error).
"""

from __future__ import annotations

import json
from pathlib import Path

_COMMON = """
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


def _inputs(payload):
    return {t.name: NumpyCodec.decode_input(t) for t in payload.inputs}


def _answer(model, outputs):
    return InferenceResponse(
        model_name=model.name,
        outputs=[NumpyCodec.encode_output(name, value) for name, value in outputs.items()],
    )
"""

_MODELS = {
    "add": """
class Model(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = _inputs(payload)
        return _answer(self, {"OUTPUT0": x["INPUT0"] + x["INPUT1"], "OUTPUT1": x["INPUT0"] - x["INPUT1"]})
""",
    "router": """
class Model(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = _inputs(payload)["INPUT0"]
        return _answer(self, {"OUTPUT0" if x.sum() >= 0 else "OUTPUT1": x})
""",
    "double": """
class Model(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = next(iter(_inputs(payload).values()))
        return _answer(self, {"OUTPUT0": x * 2})
""",
    "negate": """
class Model(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = next(iter(_inputs(payload).values()))
        return _answer(self, {"OUTPUT0": -x})
""",
    "increment": """
LIMIT = 3


class Model(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = _inputs(payload)["INPUT0"]
        if (x < LIMIT).all():
            return _answer(self, {"OUTPUT0": x + 1})
        return _answer(self, {"DONE": x})
""",
    "batchsize": """
class Model(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = _inputs(payload)["INPUT0"]
        rows = x.shape[0]
        return _answer(self, {"OUTPUT0": x, "BATCH": np.full((rows, 1), rows, dtype=np.int64)})
""",
    "slow": """
import asyncio


class Model(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        await asyncio.sleep(1.0)
        return _answer(self, {"OUTPUT0": next(iter(_inputs(payload).values()))})
""",
    "fail": """
class Model(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        raise ValueError("fail always fails")
""",
}

MODEL_NAMES = tuple(_MODELS)


def write_pipeline_models(repository: Path, names: tuple[str, ...] = MODEL_NAMES) -> None:
    """Write each named model (folder, module, model-settings.json) into ``repository``."""
    for name in names:
        module = f"pipeline_model_{name}"
        folder = repository / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{module}.py").write_text(_COMMON + _MODELS[name])
        (folder / "model-settings.json").write_text(
            json.dumps({"name": name, "implementation": f"{module}.Model"})
        )
