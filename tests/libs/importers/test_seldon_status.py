"""Native statuses -> a SeldonDeployment's status in Seldon v1's shape (state, description,
address, replicas, deploymentStatus, serviceStatus, conditions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from modelplane.libs.resources.importers.base import (
    ForeignDocument,
    ForeignRef,
    NativeStatus,
    StaticContext,
    StatusContext,
)
from modelplane.libs.resources.importers.seldon_deployment import SELDON_DEPLOYMENT

GATEWAY = StatusContext(gateway_url="http://127.0.0.1:18080", gateway_grpc="127.0.0.1:18081")

SEED = """
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
      modelUri: gs://seldon-models/sklearn/iris
      name: classifier
    name: default
    replicas: 1
"""

SPLIT = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: iris
spec:
  protocol: v2
  predictors:
  - name: main
    traffic: 80
    graph: {name: classifier, implementation: SKLEARN_SERVER, modelUri: gs://m/a}
  - name: canary
    traffic: 20
    graph: {name: classifier, implementation: SKLEARN_SERVER, modelUri: gs://m/b}
"""

CHAIN = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: chain
spec:
  protocol: tensorflow
  predictors:
  - name: default
    replicas: 2
    graph:
      name: first
      implementation: TRITON_SERVER
      modelUri: gs://m/first
      children:
      - {name: second, implementation: TRITON_SERVER, modelUri: gs://m/second}
"""

READY = {"Model": "ModelAvailable", "Pipeline": "PipelineReady", "Experiment": "ExperimentReady"}


def status_of(
    text: str, states: Mapping[str, NativeStatus] | None = None, ready: bool = True
) -> dict[str, Any]:
    """The status with every native ready (or ``states`` by name; unknown ones progressing)."""
    manifest = yaml.safe_load(text)
    translation = SELDON_DEPLOYMENT.translate(manifest, StaticContext())
    document = ForeignDocument(
        ForeignRef("SeldonDeployment", manifest["metadata"]["name"]), manifest["apiVersion"], manifest
    )
    given = dict(states or {})

    def natives(kind: str, name: str) -> NativeStatus:
        if name in given and given[name].kind == kind:
            return given[name]
        if ready:
            return NativeStatus(
                kind,
                name,
                READY[kind],
                available_replicas=1,
                total_replicas=1,
                last_change="2026-01-01T00:00:00Z",
            )
        return NativeStatus(kind, name, "", found=False)

    return SELDON_DEPLOYMENT.status(document, translation, natives, GATEWAY)


def conditions(status: Mapping[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_seed_available_in_seldons_shape() -> None:
    status = status_of(SEED)
    assert status["state"] == "Available"
    assert status["description"] == ""
    assert status["address"] == {"url": "http://127.0.0.1:18080/seldon/default/sklearn/api/v1.0/predictions"}
    assert status["deploymentStatus"] == {
        "sklearn-default-0-classifier": {"replicas": 1, "availableReplicas": 1}
    }
    assert status["replicas"] == 1
    assert status["serviceStatus"] == {
        "sklearn-default": {
            "svcName": "sklearn-default",
            "httpEndpoint": "127.0.0.1:18080",
            "grpcEndpoint": "127.0.0.1:18081",
        }
    }
    assert conditions(status) == {"DeploymentsReady": "True", "ServicesReady": "True", "Ready": "True"}
    assert status["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_creating_while_the_model_loads() -> None:
    status = status_of(SEED, ready=False)
    assert status["state"] == "Creating"
    assert conditions(status)["Ready"] == "False"
    assert "deploymentStatus" not in status


def test_failed_model_fails_the_deployment_with_its_reason() -> None:
    failed = NativeStatus(
        "Model", "sklearn", "ModelFailed", reason="no module named sklearn", total_replicas=1
    )
    status = status_of(SEED, {"sklearn": failed})
    assert status["state"] == "Failed"
    assert "sklearn" in status["description"]
    assert "no module named sklearn" in status["description"]
    assert status["deploymentStatus"]["sklearn-default-0-classifier"] == {
        "replicas": 1,
        "availableReplicas": 0,
    }
    assert conditions(status)["DeploymentsReady"] == "False"


def test_nothing_applied_is_failed_with_the_problems() -> None:
    manifest = yaml.safe_load(SEED)
    manifest["spec"]["predictors"][0]["graph"]["implementation"] = "TEMPO_SERVER"
    status = status_of(yaml.safe_dump(manifest))
    assert status["state"] == "Failed"
    assert "spec.predictors[0].graph.implementation" in status["description"]
    assert "address" not in status


def test_split_waits_for_the_experiment() -> None:
    """ServicesReady needs the Experiment that routes the deployment's name."""
    waiting = NativeStatus("Experiment", "iris", "ExperimentNotReady")
    status = status_of(SPLIT, {"iris": waiting})
    assert status["state"] == "Creating"
    assert conditions(status) == {"DeploymentsReady": "True", "ServicesReady": "False", "Ready": "False"}
    assert set(status["deploymentStatus"]) == {"iris-main-0-classifier", "iris-canary-0-classifier"}
    assert set(status["serviceStatus"]) == {"iris-main", "iris-canary"}
    assert status["address"]["url"] == "http://127.0.0.1:18080/seldon/default/iris/v2/models/classifier/infer"
    assert status_of(SPLIT)["state"] == "Available"


def test_graph_nodes_share_the_deployment_of_their_pod() -> None:
    """Prepackaged nodes without containers of their own join componentSpecs[0] (one Deployment)."""
    low = NativeStatus("Model", "chain-second", "ModelProgressing", available_replicas=1, total_replicas=2)
    status = status_of(CHAIN, {"chain-second": low})
    assert status["deploymentStatus"] == {
        "chain-default-0-first-second": {"replicas": 1, "availableReplicas": 1}
    }
    assert status["address"]["url"] == "http://127.0.0.1:18080/seldon/default/chain/v1/models/first:predict"
    assert status["state"] == "Creating"


def test_schedule_failed_triton_model_is_failed() -> None:
    """No triton server here: the scheduler's ScheduleFailed makes the deployment Failed."""
    unplaced = NativeStatus("Model", "chain-first", "ScheduleFailed", reason="no server with triton")
    status = status_of(CHAIN, {"chain-first": unplaced})
    assert status["state"] == "Failed"
    assert "no server with triton" in status["description"]
