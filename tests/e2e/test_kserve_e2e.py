"""KServe manifests as KServe's docs write them, applied unchanged with `modelplane apply -f` to a
real `modelplane up` with real MLServer replicas, and answered by the clients KServe users have:
plain HTTP for V1, tritonclient (HTTP and gRPC) for V2, and KServe's own Python client when its
venv was made (``python -m tests.helpers.kserve_client``).

One `up` serves the InferenceService scenario (the sklearn iris service with modelFormat, the
``sklearn:`` shorthand over v2, xgboost on MLServer, a canary rollout and its promotion, and the
bad input KServe users make); another serves the ServingRuntime and TrainedModel scenario
(priority-based auto-selection, an explicit runtime, and the multi-model memory check).
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import tritonclient.http as triton_http
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.svm import SVC

from tests.e2e.stack import UpProcess, wait_until
from tests.helpers.boosted_models import build_xgboost_model
from tests.helpers.kserve_client import default_cache_dir, kserve_infer, kserve_python

# KServe's docs send these two iris rows (examples/v1beta1/sklearn/v1/iris-input.json); the
# kfserving-examples SVC labels both 1.
IRIS_INSTANCES = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
IRIS_LABELS = [1, 1]
# The canary's model answers class 2 for everything, so an answer tells which version served.
CANARY_LABELS = [2, 2]

# ---- manifests, as KServe's docs write them (only the storageUri points at a local folder) ----

# docs: "Deploy your first InferenceService" (the kfserving-examples bucket holds model.joblib).
SKLEARN_IRIS = """\
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "sklearn-iris"
spec:
  predictor:
{canary}    model:
      modelFormat:
        name: sklearn
      storageUri: "{storage}"
"""

# docs: the framework shorthand over the V2 protocol, and xgboost on the MLServer runtime.
V2_SERVICES = """\
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "sklearn-irisv2"
spec:
  predictor:
    sklearn:
      protocolVersion: v2
      storageUri: "./model"
---
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "xgboost-iris"
spec:
  predictor:
    model:
      modelFormat:
        name: xgboost
      protocolVersion: v2
      runtime: kserve-mlserver
      storageUri: "./xgboost"
"""

TWO_IMPLEMENTATIONS = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: two-impls
spec:
  predictor:
    sklearn:
      storageUri: ./model
    xgboost:
      storageUri: ./model
"""

UNKNOWN_FORMAT = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: foo-model
spec:
  predictor:
    model:
      modelFormat:
        name: foo
      storageUri: ./model
"""

ORPHAN_TRAINED_MODEL = """\
apiVersion: serving.kserve.io/v1alpha1
kind: TrainedModel
metadata:
  name: orphan
spec:
  inferenceService: no-such-isvc
  model:
    storageUri: ./model
    framework: sklearn
    memory: 64Mi
"""

# The second document is invalid (protocolVersion): the first must not be stored either.
ONE_INVALID_OF_TWO = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: good-one
spec:
  predictor:
    sklearn:
      storageUri: ./model
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: bad-one
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      protocolVersion: v9
      storageUri: ./model
"""

# docs: the kserve-mlserver runtime's shape. Two of them for sklearn with different priorities;
# mlserver-a sorts first by name, so only the priority can make mlserver-b win.
RUNTIME = """\
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata:
  name: {name}
spec:
  annotations:
    prometheus.kserve.io/port: "8080"
    prometheus.kserve.io/path: /metrics
  supportedModelFormats:
    - name: sklearn
      version: "1"
      autoSelect: true
      priority: {priority}
  protocolVersions:
    - v2
  containers:
    - name: kserve-container
      image: docker.io/seldonio/mlserver:1.7.1
      env:
        - name: MLSERVER_MODEL_IMPLEMENTATION
          value: "{{{{.Labels.modelClass}}}}"
        - name: MLSERVER_HTTP_PORT
          value: "8080"
        - name: MLSERVER_GRPC_PORT
          value: "9000"
        - name: MODELS_DIR
          value: "/mnt/models"
      resources:
        requests:
          cpu: "1"
          memory: 1Gi
        limits:
          cpu: "1"
          memory: 1Gi
"""

RUNTIME_USERS = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris-auto
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      protocolVersion: v2
      storageUri: ./model
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris-pinned
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      protocolVersion: v2
      runtime: mlserver-a
      storageUri: ./model
"""

# docs: "Multi Model Serving" (the predictor has no storageUri; TrainedModels load onto it).
MULTI_MODEL = """\
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "sklearn-iris-example"
spec:
  predictor:
    minReplicas: 1
    sklearn:
      name: "sklearn-iris-predictor"
      resources:
        limits:
          cpu: 100m
          memory: 512Mi
        requests:
          cpu: 100m
          memory: 512Mi
"""

# 256Mi fits the 512Mi limit; 300Mi more does not.
TRAINED_MODELS = """\
apiVersion: "serving.kserve.io/v1alpha1"
kind: "TrainedModel"
metadata:
  name: "model1-sklearn"
spec:
  inferenceService: "sklearn-iris-example"
  model:
    storageUri: "./model"
    framework: "sklearn"
    memory: "256Mi"
---
apiVersion: "serving.kserve.io/v1alpha1"
kind: "TrainedModel"
metadata:
  name: "model2-sklearn"
spec:
  inferenceService: "sklearn-iris-example"
  model:
    storageUri: "./model"
    framework: "sklearn"
    memory: "300Mi"
"""

# ---- helpers ----------------------------------------------------------------------------------


def save_iris_svc(folder: Path) -> None:
    """An SVC on iris saved as the only file of ``folder``, as in KServe's example bucket."""
    X, y = load_iris(return_X_y=True)
    folder.mkdir(parents=True)
    joblib.dump(SVC(gamma="scale").fit(X, y), folder / "model.joblib")


def save_constant_model(folder: Path, label: int) -> None:
    """A classifier answering ``label`` for every row (a version that answers differently)."""
    X, y = load_iris(return_X_y=True)
    folder.mkdir(parents=True)
    joblib.dump(DummyClassifier(strategy="constant", constant=label).fit(X, y), folder / "model.joblib")


def apply(stack: UpProcess, tmp_path: Path, file_name: str, text: str) -> subprocess.CompletedProcess[str]:
    """`modelplane apply -f` of ``text`` written beside the model folders in ``tmp_path``."""
    manifest = tmp_path / file_name
    manifest.write_text(text)
    done = stack.cli("apply", "-f", str(manifest))
    return subprocess.CompletedProcess(["apply", file_name], done.code, done.out, done.err)


def applied(stack: UpProcess, tmp_path: Path, file_name: str, text: str) -> str:
    done = apply(stack, tmp_path, file_name, text)
    assert done.returncode == 0, done
    return done.stdout


def get(stack: UpProcess, kind: str, name: str) -> dict[str, Any]:
    done = stack.cli("get", kind, name, "-o", "json", timeout=20)
    assert done.code == 0, done
    found: dict[str, Any] = json.loads(done.out)
    return found


def status(stack: UpProcess, kind: str, name: str) -> dict[str, Any]:
    current: dict[str, Any] = get(stack, kind, name).get("status") or {}
    return current


def conditions(current: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in current.get("conditions", [])}


def ready(stack: UpProcess, kind: str, name: str) -> bool:
    return conditions(status(stack, kind, name)).get("Ready", {}).get("status") == "True"


def wait_ready(stack: UpProcess, kind: str, name: str, timeout: float = 120) -> dict[str, Any]:
    wait_until(lambda: ready(stack, kind, name), timeout, f"{kind} {name} Ready")
    return status(stack, kind, name)


def listed(stack: UpProcess, kind: str) -> set[str]:
    """Names `modelplane list KIND` shows (its table's first column is kind/name)."""
    done = stack.cli("list", kind, timeout=20)
    assert done.code == 0, done
    return {line.split()[0].split("/", 1)[1] for line in done.out.splitlines()[1:] if "/" in line.split()[0]}


@dataclass(frozen=True)
class Answer:
    code: int
    body: Any
    route: str | None  # the x-seldon-route header, when an experiment routed the request


def post_json(url: str, body: dict[str, Any]) -> Answer:
    """A plain HTTP POST (what KServe V1 users send); HTTP errors are answers too."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return Answer(
                response.status, json.loads(response.read()), response.headers.get("x-seldon-route")
            )
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, json.loads(exc.read() or b"{}"), exc.headers.get("x-seldon-route"))


def v1_predict(stack: UpProcess, model: str, instances: list[list[float]] = IRIS_INSTANCES) -> Answer:
    return post_json(
        f"http://127.0.0.1:{stack.ports.gateway_http}/v1/models/{model}:predict", {"instances": instances}
    )


def triton_http_infer(stack: UpProcess, model: str, rows: list[list[float]]) -> dict[str, Any]:
    """tritonclient.http with JSON tensors (binary_data=False); the response as JSON."""
    client = triton_http.InferenceServerClient(url=f"127.0.0.1:{stack.ports.gateway_http}")
    try:
        data = np.asarray(rows, dtype=np.float32)
        tensor = triton_http.InferInput("input-0", list(data.shape), "FP32")
        tensor.set_data_from_numpy(data, binary_data=False)
        output = triton_http.InferRequestedOutput("predict", binary_data=False)
        result = client.infer(model, inputs=[tensor], outputs=[output])
        answer: dict[str, Any] = result.get_response()
        return answer
    finally:
        client.close()


# tritonclient.grpc registers its own copy of the "inference" proto package, which clashes with
# ours in one process, so it runs in a child interpreter.
TRITON_GRPC = """
import json, sys
import numpy as np
import tritonclient.grpc as triton_grpc

target, model, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = triton_grpc.InferenceServerClient(url=target)
data = np.asarray(rows, dtype=np.float32)
tensor = triton_grpc.InferInput("input-0", list(data.shape), "FP32")
tensor.set_data_from_numpy(data)
result = client.infer(model, inputs=[tensor])
print(json.dumps({"model_name": result.get_response().model_name,
                  "predict": np.asarray(result.as_numpy("predict")).flatten().tolist()}))
"""


def triton_grpc_infer(stack: UpProcess, model: str, rows: list[list[float]]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", TRITON_GRPC, f"127.0.0.1:{stack.ports.gateway_grpc}", model, json.dumps(rows)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def stack_replicas(stack: UpProcess, server: str) -> list[dict[str, Any]]:
    """The replicas `modelplane server status` lists for ``server`` (with their endpoints)."""
    done = stack.cli("server", "status", server, "-o", "json", timeout=20)
    assert done.code == 0, done
    replicas: list[dict[str, Any]] = json.loads(done.out)["replicas"]
    return replicas


def binomial_bounds(n: int, p: float, sigmas: float = 5.0) -> tuple[float, float]:
    """[mean - k*sd, mean + k*sd] of Binomial(n, p): a fair split leaves it about once in 3.5
    million runs at k = 5."""
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return mean - sigmas * sd, mean + sigmas * sd


# ---- the InferenceService scenario -------------------------------------------------------------


def test_inference_services_serve_kserve_clients_and_roll_out_a_canary(
    stack: UpProcess, tmp_path: Path
) -> None:
    """The docs' sklearn iris service reaches Ready and answers V1 (plain HTTP and KServe's client);
    the sklearn shorthand over v2 and xgboost answer tritonclient over HTTP and gRPC; bad input is
    refused or reported naming the field, storing nothing; a 20% canary gets ~20% of the traffic
    and 100 promotes it."""
    save_iris_svc(tmp_path / "model")
    save_constant_model(tmp_path / "model-v2", CANARY_LABELS[0])
    xgboost = build_xgboost_model(tmp_path / "xgboost", "model.bst")

    # The docs' manifest, with a relative storageUri the CLI resolves against the file's folder.
    applied(stack, tmp_path, "sklearn-iris.yaml", SKLEARN_IRIS.format(canary="", storage="./model"))
    applied(stack, tmp_path, "v2.yaml", V2_SERVICES)
    iris = wait_ready(stack, "isvc", "sklearn-iris")
    gateway = f"http://127.0.0.1:{stack.ports.gateway_http}"
    assert iris["url"] == gateway
    assert iris["address"] == {"url": gateway}
    assert {c: s["status"] for c, s in conditions(iris).items()} == {
        "PredictorReady": "True",
        "IngressReady": "True",
        "Ready": "True",
    }
    assert iris["modelStatus"]["states"] == {"activeModelState": "Loaded", "targetModelState": "Loaded"}
    assert iris["modelStatus"]["transitionStatus"] == "UpToDate"
    assert iris["clusterServingRuntimeName"] == "kserve-sklearnserver"
    assert iris["observedGeneration"] == 1
    stored = get(stack, "isvc", "sklearn-iris")
    assert stored["spec"]["predictor"]["model"]["storageUri"] == f"file://{tmp_path / 'model'}"

    answer = v1_predict(stack, "sklearn-iris")
    assert (answer.code, answer.body, answer.route) == (200, {"predictions": IRIS_LABELS}, None)

    kserve = kserve_python(default_cache_dir())
    if kserve is not None:  # KServe's own client, from its venv
        got = asyncio.run(kserve_infer(kserve, gateway, "sklearn-iris", {"instances": IRIS_INSTANCES}, "v1"))
        assert got == {"predictions": IRIS_LABELS}

    # The shorthand over v2: KServe's selection picks kserve-mlserver (priority 2 beats the
    # sklearn server's 1 for sklearn over v2).
    irisv2 = wait_ready(stack, "isvc", "sklearn-irisv2")
    assert irisv2["clusterServingRuntimeName"] == "kserve-mlserver"
    answered = triton_http_infer(stack, "sklearn-irisv2", IRIS_INSTANCES)
    assert answered["model_name"].startswith("sklearn-irisv2")
    assert answered["outputs"][0]["data"] == IRIS_LABELS
    answered = triton_grpc_infer(stack, "sklearn-irisv2", IRIS_INSTANCES)
    assert answered["model_name"].startswith("sklearn-irisv2")
    assert answered["predict"] == IRIS_LABELS
    if kserve is not None:
        body = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [2, 4],
                    "datatype": "FP32",
                    "data": [v for row in IRIS_INSTANCES for v in row],
                }
            ]
        }
        got = asyncio.run(kserve_infer(kserve, gateway, "sklearn-irisv2", body, "v2"))
        assert got["outputs"][0]["data"] == IRIS_LABELS

    # xgboost on MLServer's xgboost runtime: one row of each class.
    xgb = wait_ready(stack, "isvc", "xgboost-iris")
    assert xgb["clusterServingRuntimeName"] == "kserve-mlserver"
    rows = xgboost.X[[0, 50, 100]].tolist()
    expected = xgboost.expected[[0, 50, 100]].tolist()
    assert sorted(expected) == [0, 1, 2]
    assert triton_http_infer(stack, "xgboost-iris", rows)["outputs"][0]["data"] == expected
    assert triton_grpc_infer(stack, "xgboost-iris", rows)["predict"] == expected

    # ---- bad input ----
    before = listed(stack, "isvc")
    assert before == {"sklearn-iris", "sklearn-irisv2", "xgboost-iris"}
    refused = apply(stack, tmp_path, "two.yaml", TWO_IMPLEMENTATIONS)
    assert refused.returncode == 2, refused
    assert "spec.predictor.xgboost" in refused.stderr
    assert "exactly one predictor implementation" in refused.stderr
    refused = apply(stack, tmp_path, "multi.yaml", ONE_INVALID_OF_TWO)
    assert refused.returncode == 2, refused
    assert "document 2" in refused.stderr
    assert "spec.predictor.model.protocolVersion" in refused.stderr
    assert listed(stack, "isvc") == before  # neither two-impls nor good-one was stored
    assert stack.cli("get", "isvc", "good-one").code != 0

    # A format no runtime supports is accepted and reported in KServe's shape.
    applied(stack, tmp_path, "foo.yaml", UNKNOWN_FORMAT)
    wait_until(
        lambda: (
            conditions(status(stack, "isvc", "foo-model")).get("Ready", {}).get("reason")
            == "NoSupportingRuntime"
        ),
        30,
        "foo-model NoSupportingRuntime",
    )
    foo = status(stack, "isvc", "foo-model")
    assert conditions(foo)["Ready"]["status"] == "False"
    assert foo["modelStatus"]["transitionStatus"] == "InvalidSpec"
    assert foo["modelStatus"]["lastFailureInfo"]["reason"] == "NoSupportingRuntime"
    assert "model format foo" in foo["modelStatus"]["lastFailureInfo"]["message"]
    assert v1_predict(stack, "foo-model").code == 404

    # A TrainedModel whose parent is not applied: accepted, its status names the field.
    applied(stack, tmp_path, "orphan.yaml", ORPHAN_TRAINED_MODEL)
    wait_until(lambda: "Ready" in conditions(status(stack, "tm", "orphan")), 30, "orphan status")
    orphan = conditions(status(stack, "tm", "orphan"))["Ready"]
    assert (orphan["status"], orphan["reason"]) == ("False", "InferenceServiceNotFound")
    assert "spec.inferenceService" in orphan["message"]
    assert "no-such-isvc" in orphan["message"]
    assert "orphan" not in listed(stack, "model")

    # ---- canary: a new storageUri with canaryTrafficPercent 20 ----
    canary_text = SKLEARN_IRIS.format(canary="    canaryTrafficPercent: {percent}\n", storage="./model-v2")
    applied(stack, tmp_path, "sklearn-iris.yaml", canary_text.format(percent=20))
    traffic = [
        {"revisionName": "sklearn-iris", "percent": 80, "latestRevision": False},
        {"revisionName": "sklearn-iris-canary", "percent": 20, "latestRevision": True},
    ]

    def canary_serving() -> bool:
        current = status(stack, "isvc", "sklearn-iris")
        return (
            current.get("observedGeneration") == 2
            and current["components"]["predictor"].get("traffic") == traffic
            and conditions(current)["Ready"]["status"] == "True"
        )

    wait_until(canary_serving, 120, "the canary loaded with 20% of the traffic")
    # Until the gateway has the experiment, requests reach the rolled-out version unrouted.
    wait_until(lambda: v1_predict(stack, "sklearn-iris").route is not None, 30, "the experiment routing")
    requests = 500
    canary = 0
    for _ in range(requests):
        answer = v1_predict(stack, "sklearn-iris")
        assert answer.code == 200, answer
        assert answer.route is not None
        to_canary = answer.route.startswith(":sklearn-iris-canary_")
        # The route header and the answer agree on which version served.
        assert answer.body == {"predictions": CANARY_LABELS if to_canary else IRIS_LABELS}, answer
        canary += to_canary
    low, high = binomial_bounds(requests, 0.2)
    assert low <= canary <= high, f"{canary} of {requests} requests went to the canary"

    # 100 promotes: the latest version takes all the traffic, the canary and its split go.
    applied(stack, tmp_path, "sklearn-iris.yaml", canary_text.format(percent=100))

    def promoted() -> bool:
        current = status(stack, "isvc", "sklearn-iris")
        return (
            current.get("observedGeneration") == 3
            and "traffic" not in current["components"]["predictor"]
            and conditions(current)["Ready"]["status"] == "True"
        )

    wait_until(promoted, 120, "the canary promoted")
    wait_until(lambda: "sklearn-iris-canary" not in listed(stack, "model"), 60, "the canary Model deleted")
    wait_until(
        lambda: v1_predict(stack, "sklearn-iris") == Answer(200, {"predictions": CANARY_LABELS}, None),
        60,
        "the new version answering without a split",
    )
    answers = [v1_predict(stack, "sklearn-iris") for _ in range(50)]
    assert {(a.code, json.dumps(a.body), a.route) for a in answers} == {
        (200, json.dumps({"predictions": CANARY_LABELS}), None)
    }
    stored = get(stack, "model", "sklearn-iris")
    assert stored["spec"]["storageUri"] == f"file://{tmp_path / 'model-v2'}"


# ---- the ServingRuntime and TrainedModel scenario --------------------------------------------


def test_serving_runtimes_and_trained_models(stack: UpProcess, tmp_path: Path) -> None:
    """Two sklearn runtimes: the higher priority is auto-selected, an explicit runtime overrides,
    each model runs on its own Server from that runtime; TrainedModels on a multi-model service:
    the one that fits the memory limit is served, the other is reported and not served, and
    deleting the parent is reported on the survivor."""
    save_iris_svc(tmp_path / "model")
    runtimes = (
        RUNTIME.format(name="mlserver-a", priority=1)
        + "---\n"
        + RUNTIME.format(name="mlserver-b", priority=2)
    )
    applied(stack, tmp_path, "runtimes.yaml", runtimes)
    # KServe's webhook: one format must not have equal priorities in two runtimes.
    clash = apply(stack, tmp_path, "clash.yaml", RUNTIME.format(name="mlserver-c", priority=2))
    assert clash.returncode == 2, clash
    assert "spec.supportedModelFormats[0].priority" in clash.stderr
    assert "mlserver-c" not in listed(stack, "servingruntime")

    applied(stack, tmp_path, "users.yaml", RUNTIME_USERS)
    for name, runtime in (("iris-auto", "mlserver-b"), ("iris-pinned", "mlserver-a")):
        current = wait_ready(stack, "isvc", name)
        assert current["servingRuntimeName"] == runtime
        assert "clusterServingRuntimeName" not in current
        # The model runs on a Server of its own, made from the runtime's container...
        server = get(stack, "server", f"{name}-predictor")
        assert server["spec"]["serverConfig"] == f"{name}-{runtime}"
        config = get(stack, "serverconfig", f"{name}-{runtime}")
        assert (config["spec"]["runtime"], config["spec"]["capabilities"]) == ("mlserver", ["sklearn"])
        placed = {r["server"] for r in status(stack, "model", name)["replicas"] if r["state"] == "Available"}
        assert placed == {f"{name}-predictor"}
        # ... whose MLServer process has it loaded (asked directly, not through the gateway) ...
        [replica] = stack_replicas(stack, f"{name}-predictor")
        index = post_json(f"http://{replica['httpEndpoint']}/v2/repository/index", {})
        assert [(m["name"], m["state"]) for m in index.body] == [(f"{name}_1", "READY")]
        # ... and it answers through the gateway.
        assert triton_http_infer(stack, name, IRIS_INSTANCES)["outputs"][0]["data"] == IRIS_LABELS

    # TrainedModels onto a multi-model InferenceService with a 512Mi memory limit.
    applied(stack, tmp_path, "mms.yaml", MULTI_MODEL)
    applied(stack, tmp_path, "trained.yaml", TRAINED_MODELS)
    parent = wait_ready(stack, "isvc", "sklearn-iris-example")
    assert parent["clusterServingRuntimeName"] == "kserve-sklearnserver"
    first = wait_ready(stack, "tm", "model1-sklearn")
    assert {c: s["status"] for c, s in conditions(first).items() if c != "ModelLoaded"} == {
        "InferenceServiceReady": "True",
        "IsMMSPredictor": "True",
        "MemoryResourceAvailable": "True",
        "Ready": "True",
    }
    gateway = f"http://127.0.0.1:{stack.ports.gateway_http}"
    assert first["url"] == f"{gateway}/v1/models/model1-sklearn:predict"
    answer = post_json(first["url"], {"instances": IRIS_INSTANCES})
    assert (answer.code, answer.body) == (200, {"predictions": IRIS_LABELS})
    placed = {r["server"] for r in status(stack, "model", "model1-sklearn")["replicas"]}
    assert placed == {"sklearn-iris-example"}

    second = conditions(status(stack, "tm", "model2-sklearn"))
    memory = second["MemoryResourceAvailable"]
    assert (memory["status"], memory["reason"]) == ("False", "MemoryResourceNotAvailable")
    assert "512Mi" in memory["message"]
    assert (second["Ready"]["status"], second["IsMMSPredictor"]["status"]) == ("False", "True")
    assert "model2-sklearn" not in listed(stack, "model")
    assert v1_predict(stack, "model2-sklearn").code == 404

    # Deleting the parent: its server and the TrainedModel's Model go; the status says why.
    assert stack.cli("delete", "isvc", "sklearn-iris-example").code == 0

    def orphaned() -> bool:
        return (
            conditions(status(stack, "tm", "model1-sklearn")).get("InferenceServiceReady", {}).get("reason")
            == "InferenceServiceNotFound"
        )

    wait_until(orphaned, 60, "model1-sklearn reporting its parent gone")
    wait_until(lambda: "model1-sklearn" not in listed(stack, "model"), 60, "model1-sklearn's Model deleted")
    wait_until(lambda: v1_predict(stack, "model1-sklearn").code == 404, 60, "model1-sklearn no longer served")
    assert "sklearn-iris-example" not in listed(stack, "server")
    assert conditions(status(stack, "tm", "model1-sklearn"))["Ready"]["status"] == "False"
    # The other services were not disturbed.
    assert triton_http_infer(stack, "iris-auto", IRIS_INSTANCES)["outputs"][0]["data"] == IRIS_LABELS
