"""Seldon Core v1 SeldonDeployments, applied unchanged, through a real `modelplane up`.

Driven as Seldon v1 users drive them: `modelplane apply -f` with the manifests of the seed (the
prepackaged-servers page of Seldon's docs) and Seldon's traffic/shadow and graph examples, then
their own clients against the gateway: plain HTTP on the Seldon protocol
(``/seldon/<ns>/<name>/api/v1.0/predictions`` and ``/api/v1.0/predictions`` + ``seldon-model``)
and tritonclient for ``protocol: v2``. `modelplane get sdep NAME -o json` shows the status in
Seldon v1's shape (state, address.url, replicas).

Two stacks: (1) the seed's SKLEARN_SERVER from a local folder, a ``protocol: v2`` deployment, the
seed's s3:// example with ``envSecretRefName`` on the S3 emulator, and a refused traffic split;
(2) two predictors 80/20 plus a shadow over 1,000 requests (the split read from x-seldon-route,
the shadow's copies from the gateway's and the replica's MLServer metrics), and a graph of two
models (a chain -> a Pipeline) with ``protocol: seldon``.
The models are real scikit-learn models written as a single ``model.joblib``, as Seldon's
SKLEARN_SERVER reads them.
"""

from __future__ import annotations

import json
import re
import secrets
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import tritonclient.http as triton_http
import yaml
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from tests.e2e.stack import UpProcess, wait_until
from tests.helpers.s3_emulator import S3Emulator, running_s3

# The seed's SeldonDeployment (Seldon's prepackaged model servers page), with modelUri pointing at
# a local folder instead of gs://seldon-models.
SEED = """\
apiVersion: machinelearning.seldon.io/v1alpha2
kind: SeldonDeployment
metadata:
  name: sklearn
spec:
  name: iris
  predictors:
  - graph:
      children: []
      implementation: SKLEARN_SERVER
      modelUri: {uri}
      name: classifier
    name: default
    replicas: 1
"""

# The same model served over the V2 protocol (MLServer's, what protocol: v2 runs).
V2 = """\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: iris-v2
spec:
  protocol: v2
  predictors:
  - graph:
      implementation: SKLEARN_SERVER
      modelUri: {uri}
      name: classifier
    name: default
    replicas: 1
"""

# The seed's credentials example: s3:// and envSecretRefName, the bucket on the S3 emulator.
SEED_S3 = """\
apiVersion: machinelearning.seldon.io/v1alpha2
kind: SeldonDeployment
metadata:
  name: sklearn-s3
spec:
  name: iris
  predictors:
  - graph:
      children: []
      implementation: SKLEARN_SERVER
      modelUri: s3://seldon-models/sklearn/iris
      envSecretRefName: seldon-init-container-secret
      name: classifier
    name: default
    replicas: 1
"""

# Seldon's canary + shadow example: two predictors 80/20 and a shadow mirroring every request.
SPLIT = """\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: iris
spec:
  predictors:
  - name: main
    traffic: 80
    replicas: 1
    graph:
      name: classifier
      implementation: SKLEARN_SERVER
      modelUri: {main}
  - name: canary
    traffic: {canary_traffic}
    replicas: 1
    graph:
      name: classifier
      implementation: SKLEARN_SERVER
      modelUri: {canary}
  - name: shadow
    shadow: true
    replicas: 1
    graph:
      name: classifier
      implementation: SKLEARN_SERVER
      modelUri: {shadow}
"""

# A graph of two models: a MODEL with one child is a chain (the child gets the parent's output).
CHAIN = """\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: chain
spec:
  protocol: seldon
  predictors:
  - name: default
    replicas: 1
    graph:
      name: first
      type: MODEL
      implementation: SKLEARN_SERVER
      modelUri: {first}
      children:
      - name: second
        type: MODEL
        implementation: SKLEARN_SERVER
        modelUri: {second}
        children: []
"""

X, Y = load_iris(return_X_y=True)
ROWS = X[[0, 60, 120]]
# x-seldon-route: ":<model>_<version>:" (or ":<model>:"): the model the experiment chose.
_ROUTE = re.compile(r"^:(?P<model>[a-z0-9-]+?)(?:_\d+)?:$")
# Requests of the traffic check, and its bound: P(|count - np| > 5 sigma) < 1e-6.
REQUESTS = 1000
SIGMAS = 5.0


@pytest.fixture
def s3() -> Iterator[S3Emulator]:
    with running_s3() as emulator:
        yield emulator


def joblib_folder(folder: Path, model: object) -> Path:
    """A folder holding only model.joblib, as Seldon's SKLEARN_SERVER reads it."""
    folder.mkdir(parents=True)
    joblib.dump(model, folder / "model.joblib")
    return folder


def apply(stack: UpProcess, tmp_path: Path, name: str, text: str) -> None:
    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(text)
    done = stack.cli("apply", "-f", str(manifest))
    assert done.code == 0, done


def get_sdep(stack: UpProcess, name: str) -> dict[str, Any]:
    done = stack.cli("get", "sdep", name, "-o", "json", timeout=20)
    assert done.code == 0, done
    shown: dict[str, Any] = json.loads(done.out)
    return shown


def wait_available(stack: UpProcess, name: str, timeout: float = 120) -> dict[str, Any]:
    """Until `get sdep NAME` says Available; returns its status."""
    seen: dict[str, Any] = {}

    def available() -> bool:
        seen.update(get_sdep(stack, name).get("status") or {})
        return seen.get("state") == "Available"

    try:
        wait_until(available, timeout, f"sdep {name} Available")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last status: {seen}\n{stack.log_tail()}") from None
    return seen


def seldon_predict(
    url: str, rows: np.ndarray, headers: dict[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """POST a Seldon message {"data": {"ndarray": rows}}; the answer and its headers."""
    body = json.dumps({"data": {"ndarray": rows.tolist()}}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **(headers or {})}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 200
        answer: dict[str, Any] = json.loads(resp.read())
        return answer, {k.lower(): v for k, v in resp.headers.items()}


def gateway(stack: UpProcess) -> str:
    return f"http://127.0.0.1:{stack.ports.gateway_http}"


def ndarray_of(answer: dict[str, Any]) -> np.ndarray:
    return np.asarray(answer["data"]["ndarray"], dtype=float)


def scraped(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text: str = resp.read().decode()
        return text


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def listed_names(table: str) -> list[str]:
    """The NAME column of a `modelplane list` table."""
    return sorted(line.split()[0] for line in table.splitlines()[1:] if line.strip())


def test_seed_deployments_serve_seldon_and_v2_clients(
    stack: UpProcess, tmp_path: Path, s3: S3Emulator
) -> None:
    """The seed's SKLEARN_SERVER (local folder and s3:// + envSecretRefName) and a protocol v2
    deployment reach Available and answer their clients; a traffic split not summing to 100 is
    refused naming the field, with nothing stored."""
    iris = LogisticRegression(max_iter=500).fit(X, Y)
    folder = joblib_folder(tmp_path / "iris", iris)
    apply(stack, tmp_path, "sklearn", SEED.format(uri=f"file://{folder}"))
    apply(stack, tmp_path, "iris-v2", V2.format(uri=f"file://{folder}"))

    # The seed's S3 example: the secret holds exactly what Seldon's storage initializer reads.
    client = s3.s3()
    client.create_bucket(Bucket="seldon-models")
    client.upload_file(str(folder / "model.joblib"), "seldon-models", "sklearn/iris/model.joblib")
    secret_value = "sdep-secret-" + secrets.token_hex(12)
    key_id = "sdep-key-" + secrets.token_hex(6)
    creds = {
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret_value,
        "AWS_ENDPOINT_URL": s3.endpoint_url,
        "USE_SSL": "false",
    }
    (stack.state_dir / "secrets").mkdir(parents=True, exist_ok=True)
    (stack.state_dir / "secrets" / "seldon-init-container-secret.env").write_text(
        "".join(f"{k}={v}\n" for k, v in creds.items())
    )
    apply(stack, tmp_path, "sklearn-s3", SEED_S3)

    # The seed: Available with Seldon's address.url and replicas; Seldon's clients get
    # predict_proba rows (SKLEARN_SERVER's default on the Seldon protocol), on both paths.
    status = wait_available(stack, "sklearn")
    assert get_sdep(stack, "sklearn")["spec"] == yaml.safe_load(SEED.format(uri=f"file://{folder}"))["spec"]
    assert status["address"]["url"] == f"{gateway(stack)}/seldon/default/sklearn/api/v1.0/predictions"
    assert status["replicas"] == 1
    assert [c["status"] for c in status["conditions"] if c["type"] == "Ready"] == ["True"]
    expected = iris.predict_proba(ROWS)
    answer, _ = seldon_predict(status["address"]["url"], ROWS)
    assert answer["data"]["names"] == ["t:0", "t:1", "t:2"]
    np.testing.assert_allclose(ndarray_of(answer), expected, rtol=1e-6)
    answer, _ = seldon_predict(f"{gateway(stack)}/api/v1.0/predictions", ROWS, {"seldon-model": "sklearn"})
    np.testing.assert_allclose(ndarray_of(answer), expected, rtol=1e-6)

    # protocol: v2: the address is V2's under the deployment's path (the graph root's name
    # inside, as Seldon's own address), and tritonclient gets predict's class labels.
    status = wait_available(stack, "iris-v2")
    address = status["address"]["url"]
    assert address == f"{gateway(stack)}/seldon/default/iris-v2/v2/models/classifier/infer"
    v2_request = {
        "inputs": [
            {
                "name": "predict",
                "shape": list(ROWS.shape),
                "datatype": "FP64",
                "data": ROWS.flatten().tolist(),
            }
        ]
    }
    by_address = json.loads(
        urllib.request.urlopen(
            urllib.request.Request(
                address, json.dumps(v2_request).encode(), {"content-type": "application/json"}
            ),
            timeout=30,
        ).read()
    )
    triton = triton_http.InferenceServerClient(f"127.0.0.1:{stack.ports.gateway_http}")
    tensor = triton_http.InferInput("predict", list(ROWS.shape), "FP64")
    tensor.set_data_from_numpy(ROWS, binary_data=False)
    wanted = triton_http.InferRequestedOutput("predict", binary_data=False)
    result = triton.infer("iris-v2", [tensor], outputs=[wanted])
    labels = result.as_numpy("predict")
    assert labels is not None, result.get_response()
    assert labels.flatten().tolist() == iris.predict(ROWS).tolist()
    assert by_address["outputs"][0]["data"] == iris.predict(ROWS).tolist()

    # s3:// with envSecretRefName: fetched with the secret's keys, served; the secret stays hidden.
    status = wait_available(stack, "sklearn-s3")
    answer, _ = seldon_predict(status["address"]["url"], ROWS)
    np.testing.assert_allclose(ndarray_of(answer), expected, rtol=1e-6)
    assert s3.download_count("seldon-models", "sklearn/iris/model.joblib") == 1
    shown = stack.cli("get", "sdep", "sklearn-s3", "-o", "json").out
    assert "seldon-init-container-secret" in shown  # the manifest as applied...
    logs = {str(p): p.read_text(errors="replace") for p in stack.state_dir.rglob("*.log")}
    logs["up.log"] = stack.log_path.read_text(errors="replace")
    for where, text in {"get sdep": shown, **logs}.items():
        assert secret_value not in text, where  # ...but never the secret's values

    # Bad input: traffic 80 + 30. The whole file is refused naming the field; nothing is stored.
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        SEED.format(uri=f"file://{folder}").replace("name: sklearn", "name: good-too")
        + "---\n"
        + SPLIT.format(
            main=f"file://{folder}", canary=f"file://{folder}", shadow=f"file://{folder}", canary_traffic=30
        )
    )
    done = stack.cli("apply", "-f", str(bad))
    assert done.code == 2, done
    assert "(document 2): spec.predictors[0].traffic" in done.err, done
    listed = stack.cli("list", "sdep")
    assert listed.code == 0, listed
    assert listed_names(listed.out) == [f"seldondeployment/{n}" for n in ("iris-v2", "sklearn", "sklearn-s3")]
    everything = stack.cli("list")
    assert everything.code == 0, everything
    assert not [n for n in listed_names(everything.out) if n.endswith(("/good-too", "/iris"))], everything
    # The user's folder is read, never written (model settings live in the replica's repository).
    assert [p.name for p in folder.iterdir()] == ["model.joblib"]


def replica_metrics_url(stack: UpProcess) -> str:
    """MLServer's own /metrics of the default server's replica (its settings.json names the port)."""
    settings = json.loads(
        (stack.state_dir / "replicas" / "mlserver-0" / "models" / "settings.json").read_text()
    )
    return f"http://127.0.0.1:{settings['metrics_port']}/metrics"


def mirror_copies(stack: UpProcess) -> dict[str, int]:
    """The gateway's copies to experiment mirrors so far, by result (its /metrics)."""
    text = scraped(gateway(stack) + "/metrics")
    return {
        result: int(metric(text, "modelplane_gateway_mirror_requests_total", result=result))
        for result in ("answered", "dropped", "failed")
    }


def served_by_replica(stack: UpProcess) -> dict[str, int]:
    """Inference requests each model answered on the replica, by MLServer's own count."""
    text = scraped(replica_metrics_url(stack))
    found = re.findall(r'^model_infer_request_success_total\{model="([^"]+)",[^}]*\} (\S+)$', text, re.M)
    return {model: int(float(value)) for model, value in found}


def test_traffic_split_shadow_and_graph(stack: UpProcess, tmp_path: Path) -> None:
    """80/20 between two predictors within 5 sigma over 1,000 requests, the shadow copied every
    request, and a graph of two models answers the second applied to the first's output."""
    # Each predictor answers a class of its own with certainty: the answer says who answered.
    constant = {
        name: joblib_folder(tmp_path / name, DummyClassifier(strategy="constant", constant=k).fit(X, Y))
        for k, name in enumerate(("main", "canary", "shadow"))
    }
    apply(
        stack,
        tmp_path,
        "iris",
        SPLIT.format(canary_traffic=20, **{k: f"file://{v}" for k, v in constant.items()}),
    )
    # The chain: `second` is trained on `first`'s output (predict_proba, the Seldon protocol's).
    first = LogisticRegression(max_iter=500).fit(X, Y)
    second = LogisticRegression(max_iter=500).fit(first.predict_proba(X), Y == 2)
    apply(
        stack,
        tmp_path,
        "chain",
        CHAIN.format(
            first=f"file://{joblib_folder(tmp_path / 'first', first)}",
            second=f"file://{joblib_folder(tmp_path / 'second', second)}",
        ),
    )

    status = wait_available(stack, "iris")
    url = status["address"]["url"]
    assert url == f"{gateway(stack)}/seldon/default/iris/api/v1.0/predictions"
    assert sorted(status["deploymentStatus"]) == [
        f"iris-{p}-0-classifier" for p in ("canary", "main", "shadow")
    ]

    # Requests first, until one's copy reached the shadow: from then on the mirror is routable.
    def copied() -> bool:
        seldon_predict(url, ROWS[:1])
        return mirror_copies(stack)["answered"] >= 1

    wait_until(copied, 30, "a first copy answered by the shadow")
    copies_before, served_before = mirror_copies(stack), served_by_replica(stack)

    routes: Counter[str] = Counter()
    for _ in range(REQUESTS):
        answer, headers = seldon_predict(url, ROWS[:1])
        route = _ROUTE.match(headers.get("x-seldon-route", ""))
        assert route is not None, headers
        routes[route["model"]] += 1
        # main answers class 0, canary class 1 (the shadow's class 2 never reaches the client).
        assert int(np.argmax(ndarray_of(answer)[0])) == {"iris": 0, "iris-canary": 1}[route["model"]]
    assert sum(routes.values()) == REQUESTS
    sigma = (REQUESTS * 0.8 * 0.2) ** 0.5
    assert abs(routes["iris"] - 0.8 * REQUESTS) <= SIGMAS * sigma, routes

    # The shadow got a copy of every request: the gateway's mirror counters, and the shadow
    # model's own count on its MLServer replica (the copies run after the answers: wait for them).
    wait_until(
        lambda: sum(mirror_copies(stack).values()) - sum(copies_before.values()) >= REQUESTS,
        60,
        "a copy of each request sent to the shadow",
    )
    copies = {k: v - copies_before[k] for k, v in mirror_copies(stack).items()}
    assert copies == {"answered": REQUESTS, "dropped": 0, "failed": 0}
    served = {k: v - served_before.get(k, 0) for k, v in served_by_replica(stack).items()}
    served = {model: count for model, count in served.items() if count}
    assert served == {
        "iris_1": routes["iris"],
        "iris-canary_1": routes["iris-canary"],
        "iris-shadow_1": REQUESTS,
    }

    # The graph: Available as one Seldon Deployment of both nodes; it answers second(first(x)).
    status = wait_available(stack, "chain")
    assert status["deploymentStatus"] == {
        "chain-default-0-first-second": {"replicas": 1, "availableReplicas": 1}
    }
    answer, _ = seldon_predict(status["address"]["url"], ROWS)
    assert answer["data"]["names"] == ["t:0", "t:1"]
    np.testing.assert_allclose(ndarray_of(answer), second.predict_proba(first.predict_proba(ROWS)), rtol=1e-6)
