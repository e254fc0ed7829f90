"""The walking skeleton end to end: `modelplane up`, the CLI, a real MLServer replica, the gateway,
and third-party clients (tritonclient HTTP and gRPC) as users would run them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from tests.e2e.stack import UpProcess, wait_until
from tests.helpers.iris import IrisModel, build_iris_model

NATIVE_MODEL = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata:
  name: {name}
spec:
  storageUri: file://{path}
  requirements:
  - sklearn
"""

SELDON_MODEL = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: {name}
spec:
  storageUri: "file://{path}"
  requirements:
  - sklearn
  memory: 100Ki
"""


def _load(stack: UpProcess, tmp_path: Path, template: str, name: str) -> IrisModel:
    iris = build_iris_model(tmp_path / f"artifact-{name}", name=name)
    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(template.format(name=name, path=iris.path))
    loaded = stack.cli("model", "load", "-f", str(manifest))
    assert loaded.code == 0, loaded
    ready = stack.cli("model", "status", name, "-w", "ModelAvailable", "--timeout", "120", timeout=150)
    assert ready.code == 0, f"{ready}\n{stack.log_tail()}"
    return iris


def _http_predict(stack: UpProcess, name: str, iris: IrisModel, rows: int = 5) -> np.ndarray:
    client = triton_http.InferenceServerClient(url=f"127.0.0.1:{stack.ports.gateway_http}")
    data = iris.X[:rows]
    inp = triton_http.InferInput("predict", list(data.shape), "FP64")
    inp.set_data_from_numpy(data, binary_data=False)
    out = triton_http.InferRequestedOutput("predict", binary_data=False)
    result = client.infer(name, inputs=[inp], outputs=[out])
    return np.asarray(result.as_numpy("predict")).flatten()


def _grpc_predict(stack: UpProcess, name: str, iris: IrisModel, rows: int = 5) -> np.ndarray:
    client = triton_grpc.InferenceServerClient(url=f"127.0.0.1:{stack.ports.gateway_grpc}")
    data = iris.X[:rows]
    inp = triton_grpc.InferInput("predict", list(data.shape), "FP64")
    inp.set_data_from_numpy(data)
    result = client.infer(name, inputs=[inp])
    return np.asarray(result.as_numpy("predict")).flatten()


@pytest.mark.parametrize(
    ("template", "name"),
    [(NATIVE_MODEL, "iris"), (SELDON_MODEL, "iris-seldon")],
    ids=["native-manifest", "seldon-manifest"],
)
def test_model_loads_infers_with_tritonclient_and_unloads(
    stack: UpProcess, tmp_path: Path, template: str, name: str
) -> None:
    """A Model YAML (native, or Seldon's unchanged) goes Available; tritonclient HTTP and gRPC get
    sklearn's own predictions and the metadata; after unload both protocols say not found."""
    iris = _load(stack, tmp_path, template, name)

    assert _http_predict(stack, name, iris).tolist() == iris.expected[:5].tolist()
    assert _grpc_predict(stack, name, iris).tolist() == iris.expected[:5].tolist()

    http_meta = triton_http.InferenceServerClient(
        url=f"127.0.0.1:{stack.ports.gateway_http}"
    ).get_model_metadata(name)
    assert http_meta["name"].startswith(name)
    grpc_meta = triton_grpc.InferenceServerClient(
        url=f"127.0.0.1:{stack.ports.gateway_grpc}"
    ).get_model_metadata(name)
    assert grpc_meta.name.startswith(name)

    cli_infer = stack.cli("model", "infer", name, json.dumps(iris.v2_request(rows=2)))
    assert cli_infer.code == 0, cli_infer
    assert json.loads(cli_infer.out)["outputs"][0]["data"] == iris.expected[:2].tolist()
    listed = stack.cli("model", "list")
    assert listed.code == 0
    assert name in listed.out

    unloaded = stack.cli("model", "unload", name)
    assert unloaded.code == 0, unloaded

    def gone_http() -> bool:
        try:
            _http_predict(stack, name, iris)
        except InferenceServerException as exc:
            return str(exc.status()) == "404"
        return False

    wait_until(gone_http, 60, "HTTP 404 after unload")
    with pytest.raises(InferenceServerException) as grpc_err:
        _grpc_predict(stack, name, iris)
    assert grpc_err.value.status() == "StatusCode.NOT_FOUND"
    assert name in str(grpc_err.value.message())


def test_models_survive_a_restart_of_the_whole_stack(stack: UpProcess, tmp_path: Path) -> None:
    """After Ctrl-C and a new `up` on the same state dir, a loaded model is Available again and answers."""
    iris = _load(stack, tmp_path, NATIVE_MODEL, "iris")
    assert stack.stop() == 0

    stack.start()
    stack.wait_ready()
    ready = stack.cli("model", "status", "iris", "-w", "ModelAvailable", "--timeout", "120", timeout=150)
    assert ready.code == 0, f"{ready}\n{stack.log_tail()}"
    assert _http_predict(stack, "iris", iris).tolist() == iris.expected[:5].tolist()
    assert _grpc_predict(stack, "iris", iris).tolist() == iris.expected[:5].tolist()
