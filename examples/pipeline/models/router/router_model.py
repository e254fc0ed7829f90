"""A custom MLServer model for the pipeline example: it passes INPUT0 on as OUTPUT0 when its sum
is >= 0 and as OUTPUT1 otherwise (never both), so a pipeline branches on which one it emits."""

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class Router(MLModel):  # type: ignore[misc]  # mlserver ships no type information
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        name = "OUTPUT0" if x.sum() >= 0 else "OUTPUT1"
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output(name, x)])
