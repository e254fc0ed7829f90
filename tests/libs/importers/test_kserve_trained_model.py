"""TrainedModel onto a multi-model InferenceService: the parent's Server, the memory check, a
missing parent, and the TrainedModel's status."""

from __future__ import annotations

from typing import Any

from modelplane.libs.resources.importers import importer_for
from modelplane.libs.resources.importers.base import NativeStatus, StatusContext
from tests.helpers.kserve_importers import (
    GATEWAY,
    FakeNatives,
    conditions,
    document,
    load,
    natives_of,
    translate,
)

# docs "Multi Model Serving": the parent InferenceService and two TrainedModels, as written there.
PARENT = """
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "sklearn-iris-example"
spec:
  predictor:
    minReplicas: 1
    sklearn:
      protocolVersion: v1
      name: "sklearn-iris-predictor"
      resources:
        limits:
          cpu: 100m
          memory: 512Mi
        requests:
          cpu: 100m
          memory: 512Mi
"""


def trained_model(name: str, memory: str = "256Mi") -> dict[str, Any]:
    return load(f"""
apiVersion: "serving.kserve.io/v1alpha1"
kind: "TrainedModel"
metadata:
  name: "{name}"
spec:
  inferenceService: "sklearn-iris-example"
  model:
    storageUri: "gs://kfserving-examples/models/sklearn/1.0/model"
    framework: "sklearn"
    memory: "{memory}"
""")


def status_of(manifest: dict[str, Any], translation: Any, natives: FakeNatives) -> dict[str, Any]:
    importer = importer_for(manifest["apiVersion"], manifest["kind"])
    assert importer is not None
    return importer.status(document(manifest), translation, natives, StatusContext(GATEWAY))


def test_the_multi_model_parent_is_a_server_without_a_model() -> None:
    translation = translate(load(PARENT))
    natives = natives_of(translation)
    assert list(natives) == [("Server", "sklearn-iris-example")]
    spec = natives[("Server", "sklearn-iris-example")]["spec"]
    assert spec["serverConfig"] == "mlserver"
    assert spec["memory"] == "512Mi"
    assert translation.primary == ""


def test_a_trained_model_is_a_model_on_its_parent_server() -> None:
    translation = translate(trained_model("model1-sklearn"), load(PARENT))
    assert translation.problems == ()
    spec = natives_of(translation)[("Model", "model1-sklearn")]["spec"]
    assert spec["server"] == "sklearn-iris-example"
    assert spec["requirements"] == ["sklearn"]
    assert spec["memory"] == "256Mi"
    assert spec["storageUri"] == "gs://kfserving-examples/models/sklearn/1.0/model"


def test_two_trained_models_fit_the_memory_limit_and_a_third_does_not() -> None:
    """512Mi holds model1 and model2 (256Mi each); model3 is refused, the others keep their place."""
    one, two, three = (trained_model(f"model{i}-sklearn") for i in (1, 2, 3))
    assert translate(two, load(PARENT), one).problems == ()
    refused = translate(three, load(PARENT), one, two)
    assert refused.resources == ()
    [problem] = refused.problems
    assert (problem.reason, problem.field) == ("MemoryResourceNotAvailable", "spec.model.memory")
    assert "512Mi" in problem.message
    # Applying model3 did not push out model1.
    assert translate(one, load(PARENT), two, three).problems == ()


def test_a_model_larger_than_the_limit_fails_and_a_smaller_one_passes() -> None:
    assert (
        translate(trained_model("big", "1Gi"), load(PARENT)).problems[0].reason
        == "MemoryResourceNotAvailable"
    )
    assert translate(trained_model("small", "100Mi"), load(PARENT)).problems == ()


def test_without_a_memory_limit_nothing_fits() -> None:
    """KServe compares with the predictor container's limit: none set means 0."""
    parent = load(PARENT)
    del parent["spec"]["predictor"]["sklearn"]["resources"]
    [problem] = translate(trained_model("model1-sklearn"), parent).problems
    assert problem.reason == "MemoryResourceNotAvailable"


def test_a_missing_parent_is_a_problem_naming_the_field() -> None:
    translation = translate(trained_model("model1-sklearn"))
    assert translation.resources == ()
    [problem] = translation.problems
    assert problem.field == "spec.inferenceService"
    assert "sklearn-iris-example" in problem.message
    status = status_of(trained_model("model1-sklearn"), translation, FakeNatives())
    ready = conditions(status)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InferenceServiceNotFound")
    # `get tm` shows the status alone: its message names the field to fix.
    assert "spec.inferenceService" in ready["message"]


def test_a_single_model_parent_is_not_a_multi_model_predictor() -> None:
    parent = load(PARENT)
    parent["spec"]["predictor"]["sklearn"]["storageUri"] = "gs://kfserving-examples/models/sklearn/1.0/model"
    [problem] = translate(trained_model("model1-sklearn"), parent).problems
    assert problem.reason == "IsNotMMSPredictor"


def test_the_status_follows_the_parent_server_and_the_model() -> None:
    manifest = trained_model("model1-sklearn")
    translation = translate(manifest, load(PARENT))
    waiting = status_of(manifest, translation, FakeNatives())
    assert waiting["url"] == f"{GATEWAY}/v1/models/model1-sklearn:predict"
    assert waiting["address"]["url"] == waiting["url"]
    assert conditions(waiting)["InferenceServiceReady"]["status"] == "False"
    assert conditions(waiting)["Ready"]["status"] == "False"
    ready = status_of(
        manifest,
        translation,
        FakeNatives(
            NativeStatus(kind="Server", name="sklearn-iris-example", state="ServerReady"),
            NativeStatus(kind="Model", name="model1-sklearn", state="ModelAvailable", available_replicas=1),
        ),
    )
    assert {c["type"]: c["status"] for c in ready["conditions"]} == {
        "InferenceServiceReady": "True",
        "IsMMSPredictor": "True",
        "MemoryResourceAvailable": "True",
        "ModelLoaded": "True",
        "Ready": "True",
    }


def test_the_memory_condition_reports_the_refusal() -> None:
    manifest = trained_model("big", "1Gi")
    translation = translate(manifest, load(PARENT))
    status = status_of(
        manifest,
        translation,
        FakeNatives(NativeStatus(kind="Server", name="sklearn-iris-example", state="ServerReady")),
    )
    memory = conditions(status)["MemoryResourceAvailable"]
    assert (memory["status"], memory["reason"]) == ("False", "MemoryResourceNotAvailable")
    assert conditions(status)["Ready"]["reason"] == "MemoryResourceNotAvailable"


def test_a_v2_parent_gives_a_v2_url() -> None:
    parent = load(PARENT)
    parent["spec"]["predictor"]["sklearn"]["protocolVersion"] = "v2"
    manifest = trained_model("model1-sklearn")
    status = status_of(manifest, translate(manifest, parent), FakeNatives())
    assert status["url"] == f"{GATEWAY}/v2/models/model1-sklearn/infer"
