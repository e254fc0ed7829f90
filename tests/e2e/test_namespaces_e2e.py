"""The same name in two namespaces, through a real `modelplane up`: both served, neither
disturbs the other (KServe's Host addressing, Seldon's /seldon/<namespace>/<name> path)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier

from tests.e2e.stack import UpProcess, wait_until
from tests.helpers.iris import build_iris_model

ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: sklearn-iris
  namespace: {namespace}
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: {uri}
"""

SDEP = """\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: sklearn
  namespace: {namespace}
spec:
  protocol: v2
  predictors:
  - name: default
    graph:
      name: classifier
      implementation: SKLEARN_SERVER
      modelUri: {uri}
"""


# A native Model in default, and Seldon v2's sample Model and a one-step Pipeline in seldon-mesh.
NATIVE = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata:
  name: iris
spec:
  storageUri: {uri}
  requirements: [sklearn]
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: iris
  namespace: seldon-mesh
spec:
  storageUri: {twos}
  requirements:
  - sklearn
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: chain
  namespace: seldon-mesh
spec:
  steps:
  - name: iris
  output:
    steps:
    - iris
"""


def _post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _constant_model(folder: Path, label: int) -> None:
    """A classifier that always answers ``label``: tells the namespaces' models apart."""
    X, y = load_iris(return_X_y=True)
    folder.mkdir(parents=True)
    joblib.dump(DummyClassifier(strategy="constant", constant=label).fit(X, y), folder / "model.joblib")


def _ready(stack: UpProcess, kind: str, name: str, namespace: str) -> bool:
    done = stack.cli("get", kind, name, "-n", namespace, "-o", "json")
    if done.code != 0:
        return False
    status = json.loads(done.out).get("status", {})
    if kind == "sdep":
        return bool(status.get("state") == "Available")
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))


def test_the_same_names_in_two_namespaces(stack: UpProcess, tmp_path: Path) -> None:
    iris = build_iris_model(tmp_path / "iris")
    (iris.path / "model-settings.json").unlink()  # KServe's and Seldon's buckets hold only the model
    _constant_model(tmp_path / "twos", 2)
    manifests = tmp_path / "both.yaml"
    manifests.write_text(
        "---\n".join(
            (
                ISVC.format(namespace="default", uri=iris.path),
                ISVC.format(namespace="team-a", uri=tmp_path / "twos"),
                SDEP.format(namespace="default", uri=iris.path),
                SDEP.format(namespace="seldon", uri=tmp_path / "twos"),
            )
        )
    )
    done = stack.cli("apply", "-f", str(manifests))
    assert done.code == 0, done
    for kind, name, namespace in (
        ("isvc", "sklearn-iris", "default"),
        ("isvc", "sklearn-iris", "team-a"),
        ("sdep", "sklearn", "default"),
        ("sdep", "sklearn", "seldon"),
    ):
        wait_until(
            lambda k=kind, n=name, ns=namespace: _ready(stack, k, n, ns), 120, f"{kind} {namespace}/{name}"
        )

    gateway = f"http://127.0.0.1:{stack.ports.gateway_http}"
    rows = iris.X[[50, 0]].tolist()  # a versicolor and a setosa
    labels = iris.expected[[50, 0]].tolist()
    predict = f"{gateway}/v1/models/sklearn-iris:predict"
    assert _post(predict, {"instances": rows}) == {"predictions": labels}
    host = {"Host": "sklearn-iris.team-a.example.com"}
    assert _post(predict, {"instances": rows}, host) == {"predictions": [2, 2]}
    v2 = {
        "inputs": [{"name": "predict", "shape": [2, 4], "datatype": "FP64", "data": np.ravel(rows).tolist()}]
    }
    assert (
        _post(f"{gateway}/seldon/default/sklearn/v2/models/classifier/infer", v2)["outputs"][0]["data"]
        == labels
    )
    assert _post(f"{gateway}/seldon/seldon/sklearn/v2/models/classifier/infer", v2)["outputs"][0]["data"] == [
        2,
        2,
    ]

    listed = stack.cli("list", "isvc", "-A")
    assert listed.code == 0, listed
    assert "team-a" in listed.out
    assert listed.out.count("inferenceservice/sklearn-iris") == 2
    assert "team-a" not in stack.cli("list", "isvc").out  # -n default is the default

    # Deleting one namespace's resource leaves the other's alone.
    done = stack.cli("delete", "isvc", "sklearn-iris", "-n", "team-a")
    assert done.code == 0, done
    wait_until(
        lambda: "team-a--sklearn-iris" not in stack.cli("list", "model").out, 60, "team-a's model deleted"
    )
    assert _post(predict, {"instances": rows}) == {"predictions": labels}
    assert _ready(stack, "isvc", "sklearn-iris", "default")
    assert _post(f"{gateway}/seldon/seldon/sklearn/v2/models/classifier/infer", v2)["outputs"][0]["data"] == [
        2,
        2,
    ]


def test_native_resources_in_two_namespaces(stack: UpProcess, tmp_path: Path) -> None:
    """A native Model in default and Seldon v2's sample in seldon-mesh, both named iris: each
    served in its namespace (seldon-namespace header, -n), a pipeline there calls its own."""
    iris = build_iris_model(tmp_path / "iris")
    _constant_model(tmp_path / "twos", 2)
    manifests = tmp_path / "native.yaml"
    manifests.write_text(NATIVE.format(uri=iris.path, twos=tmp_path / "twos"))
    done = stack.cli("apply", "-f", str(manifests))
    assert done.code == 0, done
    assert done.out.splitlines() == ["model/iris created", "model/iris created", "pipeline/chain created"]
    for args in (
        ("model", "iris"),
        ("model", "iris", "-n", "seldon-mesh"),
        ("pipeline", "chain", "-n", "seldon-mesh"),
    ):
        wait_until(lambda a=args: stack.cli("wait", *a, "--timeout", "1").code == 0, 120, f"{args} ready")

    gateway = f"http://127.0.0.1:{stack.ports.gateway_http}"
    rows = iris.X[[50, 0]].tolist()
    v2 = {
        "inputs": [{"name": "predict", "shape": [2, 4], "datatype": "FP64", "data": np.ravel(rows).tolist()}]
    }
    mesh = {"seldon-namespace": "seldon-mesh"}
    assert (
        _post(f"{gateway}/v2/models/iris/infer", v2)["outputs"][0]["data"] == iris.expected[[50, 0]].tolist()
    )
    assert _post(f"{gateway}/v2/models/iris/infer", v2, mesh)["outputs"][0]["data"] == [2, 2]
    assert _post(f"{gateway}/v2/pipelines/chain/infer", v2, mesh)["outputs"][0]["data"] == [2, 2]

    listed = stack.cli("list", "model", "-A")
    assert listed.code == 0, listed
    namespaces = {tuple(line.split()[:2]) for line in listed.out.splitlines()[1:]}
    assert {("model/iris", "default"), ("model/iris", "seldon-mesh")} <= namespaces
    infer = stack.cli("model", "infer", "iris", json.dumps(v2), "-n", "seldon-mesh")
    assert infer.code == 0, infer
    assert json.loads(infer.out)["outputs"][0]["data"] == [2, 2]

    # Deleting seldon-mesh's iris leaves default's alone.
    done = stack.cli("model", "unload", "iris", "-n", "seldon-mesh")
    assert done.code == 0, done
    wait_until(
        lambda: stack.cli("model", "status", "iris", "-n", "seldon-mesh").code == 1, 60, "mesh iris gone"
    )
    assert (
        _post(f"{gateway}/v2/models/iris/infer", v2)["outputs"][0]["data"] == iris.expected[[50, 0]].tolist()
    )
