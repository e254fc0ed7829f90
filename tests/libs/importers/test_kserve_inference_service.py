"""InferenceService -> native resources: KServe's documented manifests, bad input, rollout."""

from __future__ import annotations

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.importers.base import NOT_SUPPORTED_LOCALLY
from tests.helpers.kserve_importers import load, natives_of, translate

# KServe's first InferenceService (docs "Deploy your first InferenceService"), as written there.
SKLEARN_IRIS = """
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "sklearn-iris"
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: "gs://kfserving-examples/models/sklearn/1.0/model"
"""

# The older shorthand form of the same service.
SKLEARN_SHORTHAND = """
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "sklearn-iris"
spec:
  predictor:
    sklearn:
      storageUri: "gs://kfserving-examples/models/sklearn/1.0/model"
"""

# docs "Deploy Scikit-learn models with InferenceService" over the V2 protocol.
SKLEARN_V2 = """
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "sklearn-v2-iris"
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      protocolVersion: v2
      storageUri: "gs://kfserving-examples/models/sklearn/1.0/model"
"""


def test_sklearn_iris_becomes_one_model_on_the_mlserver_pool() -> None:
    """The documented iris service is Model sklearn-iris requiring sklearn, on no named server."""
    translation = translate(load(SKLEARN_IRIS))
    assert translation.problems == ()
    assert translation.primary == "sklearn-iris"
    natives = natives_of(translation)
    assert list(natives) == [("Model", "sklearn-iris")]
    spec = natives[("Model", "sklearn-iris")]["spec"]
    assert spec["storageUri"] == "gs://kfserving-examples/models/sklearn/1.0/model"
    assert spec["requirements"] == ["sklearn"]
    assert "server" not in spec
    assert spec["replicas"] == 1
    assert spec["minReplicas"] == 1
    assert translation.memo["runtime"] == "kserve-sklearnserver"
    assert translation.memo["protocol"] == "v1"


def test_the_shorthand_is_the_same_as_model_format() -> None:
    """``sklearn:`` is rewritten to model.modelFormat.name=sklearn: the same natives and runtime."""
    shorthand = translate(load(SKLEARN_SHORTHAND))
    full = translate(load(SKLEARN_IRIS))
    assert natives_of(shorthand) == natives_of(full)
    assert shorthand.memo["runtime"] == full.memo["runtime"]


def test_v1_selects_the_sklearnserver_and_v2_the_higher_priority_mlserver() -> None:
    """kserve-mlserver (priority 2) serves v2 only: v1 gets kserve-sklearnserver, v2 gets mlserver."""
    v1 = translate(load(SKLEARN_IRIS))
    v2 = translate(load(SKLEARN_V2))
    assert v1.memo["runtime"] == "kserve-sklearnserver"
    assert v2.memo["runtime"] == "kserve-mlserver"
    assert v2.memo["protocol"] == "v2"
    assert any("priority 2 beats kserve-sklearnserver (1)" in note for note in v2.notes)
    assert natives_of(v2)[("Model", "sklearn-v2-iris")]["spec"]["requirements"] == ["sklearn"]


def test_an_explicit_runtime_overrides_the_priority() -> None:
    """runtime: kserve-sklearnserver wins over the higher-priority kserve-mlserver for v2."""
    doc = load(SKLEARN_V2)
    doc["spec"]["predictor"]["model"]["runtime"] = "kserve-sklearnserver"
    translation = translate(doc)
    assert translation.memo["runtime"] == "kserve-sklearnserver"
    assert translation.problems == ()


def test_two_predictor_implementations_are_refused_naming_the_second() -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"]["xgboost"] = {"storageUri": "gs://bucket/xgb"}
    with pytest.raises(InvalidError) as caught:
        translate(doc)
    assert caught.value.field == "spec.predictor.model"
    assert "xgboost and model" in caught.value.message


def test_model_plus_a_kserve_container_is_two_implementations() -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"]["containers"] = [{"name": "kserve-container", "image": "me/server"}]
    with pytest.raises(InvalidError) as caught:
        translate(doc)
    assert caught.value.field == "spec.predictor.containers"


def test_no_implementation_is_refused() -> None:
    doc = load(SKLEARN_IRIS)
    del doc["spec"]["predictor"]["model"]
    with pytest.raises(InvalidError) as caught:
        translate(doc)
    assert caught.value.field == "spec.predictor"


def test_a_format_no_runtime_supports_is_accepted_with_a_problem() -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"]["model"]["modelFormat"]["name"] = "caffe"
    translation = translate(doc)
    assert translation.resources == ()
    [problem] = translation.problems
    assert problem.reason == "NoSupportingRuntime"
    assert problem.field == "spec.predictor.model.modelFormat.name"
    assert "caffe" in problem.message


def test_a_version_no_runtime_lists_has_no_runtime() -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"]["model"]["modelFormat"]["version"] = "7"
    [problem] = translate(doc).problems
    assert problem.reason == "NoSupportingRuntime"
    assert "sklearn:7" in problem.message


def test_an_unknown_explicit_runtime_is_not_recognized() -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"]["model"]["runtime"] = "my-runtime"
    [problem] = translate(doc).problems
    assert (problem.reason, problem.field) == ("RuntimeNotRecognized", "spec.predictor.model.runtime")


def test_an_explicit_runtime_without_the_protocol_has_no_support() -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"]["model"]["runtime"] = "kserve-mlserver"
    doc["spec"]["predictor"]["model"]["protocolVersion"] = "v1"
    [problem] = translate(doc).problems
    assert (problem.reason, problem.field) == ("NoSupportingRuntime", "spec.predictor.model.protocolVersion")


def test_an_explicit_runtime_protocol_defaults_to_its_lowest() -> None:
    """No protocolVersion with kserve-mlserver named: the model is served over v2 (KServe)."""
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"]["model"]["runtime"] = "kserve-mlserver"
    assert translate(doc).memo["protocol"] == "v2"


def test_an_unknown_protocol_is_refused() -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"]["model"]["protocolVersion"] = "v3"
    with pytest.raises(InvalidError) as caught:
        translate(doc)
    assert caught.value.field == "spec.predictor.model.protocolVersion"


def test_a_missing_model_format_name_is_refused() -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"]["model"]["modelFormat"] = {"version": "1"}
    with pytest.raises(InvalidError) as caught:
        translate(doc)
    assert caught.value.field == "spec.predictor.model.modelFormat.name"


def test_an_invalid_name_is_refused() -> None:
    doc = load(SKLEARN_IRIS)
    doc["metadata"]["name"] = "1-iris"
    with pytest.raises(InvalidError) as caught:
        translate(doc)
    assert caught.value.field == "metadata.name"


def test_triton_formats_need_triton_and_say_it_is_missing() -> None:
    """onnx auto-selects kserve-tritonserver (v2 by default): the Model requires triton too."""
    doc = load("""
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: style-sample
spec:
  predictor:
    model:
      protocolVersion: v2
      modelFormat:
        name: onnx
      storageUri: gs://kfserving-examples/models/onnx
""")
    translation = translate(doc)
    assert translation.memo["runtime"] == "kserve-tritonserver"
    assert natives_of(translation)[("Model", "style-sample")]["spec"]["requirements"] == ["onnx", "triton"]
    [problem] = translation.problems
    assert problem.reason == NOT_SUPPORTED_LOCALLY
    assert "tritonserver" in problem.message


def test_the_triton_shorthand_defaults_to_v2() -> None:
    doc = load("""
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: triton-cifar}
spec:
  predictor:
    triton:
      storageUri: gs://kfserving-examples/models/torchscript
""")
    translation = translate(doc)
    assert translation.memo["protocol"] == "v2"
    assert translation.memo["runtime"] == "kserve-tritonserver"


def test_grpc_v2_is_served_and_noted() -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"]["model"]["modelFormat"]["name"] = "triton"
    doc["spec"]["predictor"]["model"]["protocolVersion"] = "grpc-v2"
    translation = translate(doc)
    assert translation.memo["protocol"] == "grpc-v2"
    assert any("gRPC" in note for note in translation.notes)


def test_transformer_and_explainer_are_accepted_with_problems() -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["transformer"] = {"containers": [{"name": "kserve-container", "image": "me/transformer"}]}
    doc["spec"]["explainer"] = {"art": {"type": "SquareAttack"}}
    translation = translate(doc)
    assert [p.field for p in translation.problems] == ["spec.transformer", "spec.explainer"]
    assert {p.reason for p in translation.problems} == {NOT_SUPPORTED_LOCALLY}
    assert list(natives_of(translation)) == [("Model", "sklearn-iris")]


def test_a_custom_predictor_container_is_accepted_without_natives() -> None:
    doc = load("""
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: custom-model}
spec:
  predictor:
    containers:
    - name: kserve-container
      image: kserve/custom-model-grpc:latest
""")
    translation = translate(doc)
    assert translation.resources == ()
    [problem] = translation.problems
    assert (problem.field, problem.reason) == ("spec.predictor.containers", NOT_SUPPORTED_LOCALLY)


def test_storage_with_type_and_bucket_becomes_a_storage_uri_and_secret() -> None:
    doc = load(SKLEARN_IRIS)
    model = doc["spec"]["predictor"]["model"]
    del model["storageUri"]
    model["storage"] = {
        "key": "localMinIO",
        "path": "sklearn",
        "parameters": {"type": "s3", "bucket": "example-models"},
    }
    spec = natives_of(translate(doc))[("Model", "sklearn-iris")]["spec"]
    assert spec["storageUri"] == "s3://example-models/sklearn"
    assert spec["secretName"] == "localMinIO"


def test_storage_whose_bucket_is_in_the_secret_is_a_problem() -> None:
    doc = load(SKLEARN_IRIS)
    model = doc["spec"]["predictor"]["model"]
    del model["storageUri"]
    model["storage"] = {"key": "localMinIO", "path": "sklearn"}
    translation = translate(doc)
    assert translation.resources == ()
    [problem] = translation.problems
    assert problem.field == "spec.predictor.model.storage"


def test_storage_uri_and_storage_path_together_are_refused() -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"]["model"]["storage"] = {"path": "sklearn"}
    with pytest.raises(InvalidError) as caught:
        translate(doc)
    assert caught.value.field == "spec.predictor.model.storage.path"


# ---- scaling ---------------------------------------------------------------------------------


def test_concurrency_scaling_becomes_native_autoscaling() -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"].update(minReplicas=0, maxReplicas=3, scaleMetric="concurrency", scaleTarget=5)
    spec = natives_of(translate(doc))[("Model", "sklearn-iris")]["spec"]
    assert (spec.get("minReplicas", 0), spec["maxReplicas"], spec["replicas"]) == (0, 3, 1)
    assert spec["autoscaling"]["scaleMetric"] == "concurrency"
    assert spec["autoscaling"]["targetRequests"] == 5


def test_rps_scaling_keeps_its_metric() -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"].update(scaleMetric="rps", scaleTarget=20)
    spec = natives_of(translate(doc))[("Model", "sklearn-iris")]["spec"]
    assert spec["autoscaling"]["scaleMetric"] == "rps"


def test_cpu_scaling_is_a_problem_without_autoscaling() -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"].update(minReplicas=2, scaleMetric="cpu", scaleTarget=80)
    translation = translate(doc)
    [problem] = translation.problems
    assert (problem.field, problem.reason) == ("spec.predictor.scaleMetric", NOT_SUPPORTED_LOCALLY)
    spec = natives_of(translation)[("Model", "sklearn-iris")]["spec"]
    assert "autoscaling" not in spec
    assert spec["replicas"] == 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"minReplicas": 3, "maxReplicas": 2}, "spec.predictor.minReplicas"),
        ({"minReplicas": -1}, "spec.predictor.minReplicas"),
        ({"maxReplicas": -1}, "spec.predictor.maxReplicas"),
        ({"scaleMetric": "gpu"}, "spec.predictor.scaleMetric"),
        ({"scaleTarget": 0}, "spec.predictor.scaleTarget"),
        ({"canaryTrafficPercent": 101}, "spec.predictor.canaryTrafficPercent"),
    ],
)
def test_bad_component_fields_are_refused(fields: dict[str, object], field: str) -> None:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"].update(fields)
    with pytest.raises(InvalidError) as caught:
        translate(doc)
    assert caught.value.field == field


# ---- canary rollout ----------------------------------------------------------------------------


def _version(uri: str, percent: int | None = None) -> dict[str, object]:
    doc = load(SKLEARN_IRIS)
    doc["spec"]["predictor"]["model"]["storageUri"] = uri
    if percent is not None:
        doc["spec"]["predictor"]["canaryTrafficPercent"] = percent
    return doc


def test_the_first_version_takes_all_traffic_whatever_the_canary_percent() -> None:
    translation = translate(_version("gs://models/v1", 10))
    assert list(natives_of(translation)) == [("Model", "sklearn-iris")]
    assert translation.memo["rolledOut"]["spec"]["storageUri"] == "gs://models/v1"


def test_a_canary_splits_traffic_with_the_rolled_out_version() -> None:
    first = translate(_version("gs://models/v1"))
    second = translate(_version("gs://models/v2", 10), memo=first.memo)
    natives = natives_of(second)
    assert list(natives) == [
        ("Model", "sklearn-iris"),
        ("Model", "sklearn-iris-canary"),
        ("Experiment", "sklearn-iris"),
    ]
    assert natives[("Model", "sklearn-iris")]["spec"]["storageUri"] == "gs://models/v1"
    assert natives[("Model", "sklearn-iris-canary")]["spec"]["storageUri"] == "gs://models/v2"
    experiment = natives[("Experiment", "sklearn-iris")]["spec"]
    assert experiment["default"] == "sklearn-iris"
    assert experiment["candidates"] == [
        {"name": "sklearn-iris", "weight": 90},
        {"name": "sklearn-iris-canary", "weight": 10},
    ]
    assert second.memo["rolledOut"]["spec"]["storageUri"] == "gs://models/v1"


def test_removing_the_canary_percent_promotes_the_latest() -> None:
    first = translate(_version("gs://models/v1"))
    canary = translate(_version("gs://models/v2", 10), memo=first.memo)
    promoted = translate(_version("gs://models/v2"), memo=canary.memo)
    natives = natives_of(promoted)
    assert list(natives) == [("Model", "sklearn-iris")]
    assert natives[("Model", "sklearn-iris")]["spec"]["storageUri"] == "gs://models/v2"
    assert promoted.memo["rolledOut"]["spec"]["storageUri"] == "gs://models/v2"


def test_a_scaling_change_is_not_a_new_version() -> None:
    first = translate(_version("gs://models/v1"))
    doc = _version("gs://models/v1", 10)
    doc["spec"]["predictor"]["maxReplicas"] = 4  # type: ignore[index]
    natives = natives_of(translate(doc, memo=first.memo))
    assert list(natives) == [("Model", "sklearn-iris")]
    assert natives[("Model", "sklearn-iris")]["spec"]["maxReplicas"] == 4


def test_a_zero_percent_canary_is_deployed_without_traffic() -> None:
    first = translate(_version("gs://models/v1"))
    natives = natives_of(translate(_version("gs://models/v2", 0), memo=first.memo))
    assert list(natives) == [("Model", "sklearn-iris"), ("Model", "sklearn-iris-canary")]
