"""InferenceService status in KServe's shape, from the translation and native statuses."""

from __future__ import annotations

from typing import Any

from modelplane.libs.resources.importers import importer_for
from modelplane.libs.resources.importers.base import NativeStatus, StatusContext, Translation
from tests.helpers.kserve_importers import GATEWAY, FakeNatives, conditions, document, load, translate

ISVC = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: sklearn-iris}
spec:
  predictor:
    model:
      modelFormat: {name: sklearn}
      storageUri: gs://kfserving-examples/models/sklearn/1.0/model
"""


def status_of(
    manifest: dict[str, Any], translation: Translation, *statuses: NativeStatus, generation: int = 3
) -> dict[str, Any]:
    importer = importer_for(manifest["apiVersion"], manifest["kind"])
    assert importer is not None
    return importer.status(
        document(manifest, generation),
        translation,
        FakeNatives(*statuses),
        StatusContext(GATEWAY, "127.0.0.1:18081"),
    )


def model(name: str = "sklearn-iris", state: str = "ModelAvailable", **fields: Any) -> NativeStatus:
    defaults: dict[str, Any] = {
        "available_replicas": 1 if state == "ModelAvailable" else 0,
        "total_replicas": 1,
    }
    defaults.update(fields)
    return NativeStatus(kind="Model", name=name, state=state, generation=1, observed_generation=1, **defaults)


def test_an_available_model_makes_the_service_ready() -> None:
    manifest = load(ISVC)
    status = status_of(manifest, translate(manifest), model(last_change="2026-01-01T00:00:00Z"))
    assert status["url"] == GATEWAY
    assert status["address"] == {"url": GATEWAY}
    assert status["components"]["predictor"] == {
        "url": GATEWAY,
        "restUrl": GATEWAY,
        "grpcUrl": "127.0.0.1:18081",
    }
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "PredictorReady": "True",
        "IngressReady": "True",
        "Ready": "True",
    }
    assert conditions(status)["Ready"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert status["modelStatus"] == {
        "transitionStatus": "UpToDate",
        "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
        "copies": {"totalCopies": 1, "failedCopies": 0},
    }
    assert status["clusterServingRuntimeName"] == "kserve-sklearnserver"
    assert status["observedGeneration"] == 3


def test_a_model_not_observed_yet_is_pending_without_observed_generation() -> None:
    manifest = load(ISVC)
    status = status_of(manifest, translate(manifest))
    assert status["modelStatus"]["transitionStatus"] == "InProgress"
    assert status["modelStatus"]["states"]["targetModelState"] == "Pending"
    assert conditions(status)["Ready"]["status"] == "False"
    assert "observedGeneration" not in status


def test_a_loading_model_is_in_progress() -> None:
    manifest = load(ISVC)
    status = status_of(manifest, translate(manifest), model(state="ModelProgressing"))
    assert status["modelStatus"]["states"] == {"activeModelState": "", "targetModelState": "Loading"}
    assert conditions(status)["PredictorReady"]["reason"] == "ModelProgressing"


def test_a_failed_model_is_blocked_by_failed_load() -> None:
    manifest = load(ISVC)
    status = status_of(
        manifest, translate(manifest), model(state="ModelFailed", reason="pickle error", total_replicas=2)
    )
    assert status["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad"
    assert status["modelStatus"]["states"]["targetModelState"] == "FailedToLoad"
    assert status["modelStatus"]["lastFailureInfo"] == {
        "reason": "ModelLoadFailed",
        "message": "pickle error",
    }
    assert status["modelStatus"]["copies"] == {"totalCopies": 0, "failedCopies": 2}
    assert conditions(status)["Ready"]["message"] == "pickle error"


def test_a_schedule_failure_is_pending_with_the_scheduler_reason() -> None:
    manifest = load(ISVC)
    status = status_of(
        manifest, translate(manifest), model(state="ScheduleFailed", reason="no server has sklearn")
    )
    assert status["modelStatus"]["states"]["targetModelState"] == "Pending"
    assert status["modelStatus"]["lastFailureInfo"] == {
        "reason": "ScheduleFailed",
        "message": "no server has sklearn",
    }


def test_no_supporting_runtime_is_an_invalid_spec() -> None:
    manifest = load(ISVC)
    manifest["spec"]["predictor"]["model"]["modelFormat"]["name"] = "caffe"
    status = status_of(manifest, translate(manifest))
    assert status["modelStatus"]["transitionStatus"] == "InvalidSpec"
    assert status["modelStatus"]["states"]["targetModelState"] == "FailedToLoad"
    assert status["modelStatus"]["lastFailureInfo"]["reason"] == "NoSupportingRuntime"
    predictor = conditions(status)["PredictorReady"]
    assert (predictor["status"], predictor["reason"]) == ("False", "NoSupportingRuntime")
    assert conditions(status)["Ready"]["status"] == "False"


def test_a_transformer_shows_as_not_ready() -> None:
    manifest = load(ISVC)
    manifest["spec"]["transformer"] = {"containers": [{"name": "kserve-container", "image": "me/t"}]}
    status = status_of(manifest, translate(manifest), model())
    transformer = conditions(status)["TransformerReady"]
    assert (transformer["status"], transformer["reason"]) == ("False", "NotSupportedLocally")
    assert conditions(status)["PredictorReady"]["status"] == "True"
    assert conditions(status)["Ready"]["status"] == "False"
    assert "ExplainerReady" not in conditions(status)


def test_a_canary_reports_its_traffic_and_the_latest_model() -> None:
    first_manifest = load(ISVC)
    first = translate(first_manifest)
    manifest = load(ISVC)
    manifest["spec"]["predictor"]["model"]["storageUri"] = "gs://models/v2"
    manifest["spec"]["predictor"]["canaryTrafficPercent"] = 20
    translation = translate(manifest, memo=first.memo)
    status = status_of(manifest, translation, model(), model("sklearn-iris-canary", "ModelProgressing"))
    assert status["components"]["predictor"]["traffic"] == [
        {"revisionName": "sklearn-iris", "percent": 80, "latestRevision": False},
        {"revisionName": "sklearn-iris-canary", "percent": 20, "latestRevision": True},
    ]
    assert status["modelStatus"]["states"] == {"activeModelState": "Loaded", "targetModelState": "Loading"}


def test_a_multi_model_service_follows_its_server() -> None:
    manifest = load(ISVC)
    del manifest["spec"]["predictor"]["model"]["storageUri"]
    translation = translate(manifest)
    status = status_of(
        manifest,
        translation,
        NativeStatus(
            kind="Server",
            name="sklearn-iris",
            state="ServerReady",
            available_replicas=1,
            generation=1,
            observed_generation=1,
        ),
    )
    assert conditions(status)["Ready"]["status"] == "True"
    assert status["modelStatus"]["copies"]["totalCopies"] == 1
