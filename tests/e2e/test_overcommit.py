"""Overcommit end to end: a replica with memory for two models is assigned three (its
ServerConfig overcommits by 50%); its agent keeps two resident and reloads the third on demand,
so round-robin requests over all three, REST and gRPC, are each answered correctly."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import tritonclient.grpc as triton_grpc

from tests.e2e.stack import UpProcess, wait_until
from tests.e2e.test_scheduling import apply_model, infer, placed_on, runtime_pid, status
from tests.helpers.iris import build_iris_model

TIGHT = """\
apiVersion: modelplane.io/v1alpha1
kind: ServerConfig
metadata:
  name: tight
spec:
  runtime: mlserver
  capabilities: [sklearn, tight-cap]
  memory: 20Mi
  overcommitPercent: 50
---
apiVersion: modelplane.io/v1alpha1
kind: Server
metadata:
  name: tight
spec:
  serverConfig: tight
  replicas: 1
"""

MODELS = ("one", "two", "three")


def resident(stack: UpProcess, http_endpoint: str) -> set[str]:
    """The model versions the replica's MLServer holds in memory (READY in its repository index)."""
    request = urllib.request.Request(
        f"http://{http_endpoint}/v2/repository/index",
        data=b"{}",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return {m["name"] for m in json.loads(response.read()) if m.get("state") == "READY"}


def test_three_models_on_memory_for_two_all_answer(stack: UpProcess, tmp_path: Path) -> None:
    """Every request of a round robin over three models on a two-model replica is answered right."""
    manifest = tmp_path / "tight.yaml"
    manifest.write_text(TIGHT)
    assert stack.cli("apply", "-f", str(manifest)).code == 0
    wait_until(
        lambda: status(stack, "server", "tight").get("availableReplicas") == 1, 120, "server tight ready"
    )
    iris = build_iris_model(tmp_path / "iris")

    # 10Mi each: 20Mi of memory holds two; 20Mi x 1.5 = 30Mi lets the scheduler assign all three.
    for name in MODELS:
        apply_model(stack, tmp_path, name, iris, ["sklearn", "tight-cap"], extra="  memory: 10Mi\n")
        wait_until(lambda n=name: placed_on(stack, n) == {"tight.0"}, 90, f"{name} Available on tight.0")
    assert runtime_pid(stack, "tight-0") > 0

    server = status(stack, "server", "tight")
    replica = server["replicas"][0]
    assert sorted(replica["models"]) == ["one_1", "three_1", "two_1"], replica
    http_endpoint = stack_replica_endpoint(stack)
    assert len(resident(stack, http_endpoint)) == 2, "only two of the three fit in the replica's memory"

    expected = iris.expected[:3].tolist()
    grpc_client = triton_grpc.InferenceServerClient(f"127.0.0.1:{stack.ports.gateway_grpc}")
    try:
        for round_ in range(4):
            for name in MODELS:
                assert infer(stack, name, iris) == expected, (round_, name, "REST")
                inputs = triton_grpc.InferInput("predict", [3, 4], "FP64")
                inputs.set_data_from_numpy(np.ascontiguousarray(iris.X[:3], dtype=np.float64))
                result = grpc_client.infer(name, [inputs])
                assert result.as_numpy(result.get_response().outputs[0].name).ravel().tolist() == expected, (
                    round_,
                    name,
                    "gRPC",
                )
    finally:
        grpc_client.close()

    # The round robin really needed reloads: never more than two resident, all three still assigned.
    assert len(resident(stack, http_endpoint)) == 2
    assert "model_evicted" in stack.log_tail(5000)
    assert "model_reloaded" in stack.log_tail(5000)
    for name in MODELS:
        assert status(stack, "model", name)["state"] == "ModelAvailable"


def stack_replica_endpoint(stack: UpProcess) -> str:
    """host:port of the `tight` replica's MLServer REST API, from the record its agent keeps."""
    record = json.loads((stack.state_dir / "replicas" / "tight-0" / "runtime.json").read_text())
    endpoint: str = record["endpoints"]["http"]
    return endpoint
