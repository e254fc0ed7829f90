"""ServingRuntime / ClusterServingRuntime: webhook rules, selection against user runtimes, and the
ServerConfig an InferenceService gets from a user runtime."""

from __future__ import annotations

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.importers import importer_for
from modelplane.libs.resources.importers.base import NOT_SUPPORTED_LOCALLY, StatusContext
from tests.helpers.kserve_importers import GATEWAY, FakeNatives, document, load, natives_of, translate

# docs "Serving Runtimes": a namespaced runtime auto-selected for sklearn with a priority.
SR_PRIORITY = """
apiVersion: serving.kserve.io/v1alpha1
kind: ServingRuntime
metadata:
  name: example-runtime
spec:
  supportedModelFormats:
    - name: sklearn
      version: "1"
      autoSelect: true
      priority: 1
  protocolVersions: [v1, v2]
  containers:
    - name: kserve-container
      image: examplemodelserver:latest
      command: [example-server]
      args:
        - --model_name={{.Name}}
        - --model_dir=/mnt/models
        - --http_port=8080
"""

CSR_MLSERVER = """
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata:
  name: my-mlserver
spec:
  supportedModelFormats:
    - name: sklearn
      version: "1"
      autoSelect: true
      priority: 3
  protocolVersions: [v2]
  containers:
    - name: kserve-container
      image: docker.io/seldonio/mlserver:1.7.1
      env:
        - name: MLSERVER_MODEL_IMPLEMENTATION
          value: "{{.Labels.modelClass}}"
        - name: MLSERVER_HTTP_PORT
          value: "8080"
      resources:
        limits: {memory: 2Gi}
"""

ISVC = """
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: sklearn-iris
  labels: {modelClass: mlserver_sklearn.SKLearnModel}
spec:
  predictor:
    model:
      modelFormat: {name: sklearn}
      protocolVersion: v2
      storageUri: gs://kfserving-examples/models/sklearn/1.0/model
"""


def test_a_runtime_produces_no_natives() -> None:
    translation = translate(load(SR_PRIORITY))
    assert translation.resources == ()
    assert translation.primary == ""


def test_a_namespaced_runtime_comes_before_the_built_ins() -> None:
    """Namespaced runtimes are ranked before cluster ones: example-runtime wins over kserve-mlserver."""
    translation = translate(load(ISVC), load(SR_PRIORITY))
    assert translation.memo["runtime"] == "example-runtime"
    assert translation.memo["runtimeKind"] == "ServingRuntime"


def test_the_higher_priority_cluster_runtime_wins() -> None:
    """my-mlserver (priority 3) beats kserve-mlserver (2) and kserve-sklearnserver (1) for v2."""
    translation = translate(load(ISVC), load(CSR_MLSERVER))
    assert translation.memo["runtime"] == "my-mlserver"
    assert any("priority 3 beats kserve-mlserver (2)" in note for note in translation.notes)


def test_an_explicit_runtime_overrides_a_user_runtime_priority() -> None:
    doc = load(ISVC)
    doc["spec"]["predictor"]["model"]["runtime"] = "kserve-mlserver"
    translation = translate(doc, load(CSR_MLSERVER), load(SR_PRIORITY))
    assert translation.memo["runtime"] == "kserve-mlserver"
    assert list(natives_of(translation)) == [("Model", "sklearn-iris")]


def test_a_disabled_runtime_is_skipped_and_refused_when_named() -> None:
    runtime = load(SR_PRIORITY)
    runtime["spec"]["disabled"] = True
    assert translate(load(ISVC), runtime).memo["runtime"] == "kserve-mlserver"
    doc = load(ISVC)
    doc["spec"]["predictor"]["model"]["runtime"] = "example-runtime"
    [problem] = translate(doc, runtime).problems
    assert problem.reason == "RuntimeDisabled"


def test_an_explicit_runtime_may_serve_a_format_without_auto_select() -> None:
    """kserve-tritonserver lists pytorch without autoSelect: auto picks torchserve, naming it works."""
    doc = load(ISVC)
    doc["spec"]["predictor"]["model"]["modelFormat"]["name"] = "pytorch"
    assert translate(doc).memo["runtime"] == "kserve-torchserve"
    doc["spec"]["predictor"]["model"]["runtime"] = "kserve-tritonserver"
    assert translate(doc).memo["runtime"] == "kserve-tritonserver"


def test_a_user_runtime_replaces_the_built_in_of_the_same_name() -> None:
    replacement = load(CSR_MLSERVER)
    replacement["metadata"]["name"] = "kserve-mlserver"
    replacement["spec"]["supportedModelFormats"][0]["priority"] = 2
    translation = translate(load(ISVC), replacement)
    assert translation.memo["runtime"] == "kserve-mlserver"
    # A user runtime: its own ServerConfig and Server, not the mlserver pool.
    assert ("ServerConfig", "sklearn-iris-mlserver") in natives_of(translation)


def test_an_mlserver_user_runtime_becomes_an_mlserver_server_config() -> None:
    translation = translate(load(ISVC), load(CSR_MLSERVER))
    natives = natives_of(translation)
    assert list(natives) == [
        ("ServerConfig", "sklearn-iris-my-mlserver"),
        ("Server", "sklearn-iris-predictor"),
        ("Model", "sklearn-iris"),
    ]
    config = natives[("ServerConfig", "sklearn-iris-my-mlserver")]["spec"]
    assert config["runtime"] == "mlserver"
    assert config["capabilities"] == ["sklearn"]
    # The template is filled from the InferenceService's labels; the fixed port is ours to choose.
    assert config["env"] == {"MLSERVER_MODEL_IMPLEMENTATION": "mlserver_sklearn.SKLearnModel"}
    assert config["memory"] == "2Gi"
    assert natives[("Server", "sklearn-iris-predictor")]["spec"]["serverConfig"] == "sklearn-iris-my-mlserver"
    assert natives[("Model", "sklearn-iris")]["spec"]["server"] == "sklearn-iris-predictor"


def test_a_custom_user_runtime_fills_its_templates_into_the_command() -> None:
    translation = translate(load(ISVC), load(SR_PRIORITY))
    config = natives_of(translation)[("ServerConfig", "sklearn-iris-example-runtime")]["spec"]
    assert config["runtime"] == "custom"
    assert config["command"] == ["example-server"]
    assert config["args"] == ["--model_name=sklearn-iris", "--model_dir=/mnt/models", "--http_port=8080"]


def test_a_template_value_that_is_not_plain_is_refused_naming_the_label() -> None:
    doc = load(ISVC)
    doc["metadata"]["labels"]["modelClass"] = "x; rm -rf /"
    with pytest.raises(InvalidError) as caught:
        translate(doc, load(CSR_MLSERVER))
    assert caught.value.field == "metadata.labels.modelClass"


def test_a_runtime_container_without_command_is_a_problem() -> None:
    runtime = load(SR_PRIORITY)
    del runtime["spec"]["containers"][0]["command"]
    translation = translate(load(ISVC), runtime)
    assert translation.resources == ()
    [problem] = translation.problems
    assert problem.reason == NOT_SUPPORTED_LOCALLY
    assert "has no command" in problem.message


def test_a_long_name_keeps_the_server_config_within_63_characters() -> None:
    doc = load(ISVC)
    doc["metadata"]["name"] = "a" * 50
    runtime = load(SR_PRIORITY)
    runtime["metadata"]["name"] = "a-runtime-with-a-rather-long-name"
    names = [name for _, name in natives_of(translate(doc, runtime))]
    assert all(len(name) <= 63 for name in names)


def test_same_priority_for_one_format_in_two_runtimes_is_refused() -> None:
    """KServe's webhook: equal name+version, shared protocol, same multiModel -> no winner."""
    clash = load(SR_PRIORITY)
    clash["metadata"]["name"] = "other-runtime"
    with pytest.raises(InvalidError) as caught:
        translate(clash, load(SR_PRIORITY))
    assert caught.value.field == "spec.supportedModelFormats[0].priority"
    assert "example-runtime" in caught.value.message


def test_same_priority_without_a_shared_protocol_is_allowed() -> None:
    clash = load(SR_PRIORITY)
    clash["metadata"]["name"] = "other-runtime"
    clash["spec"]["protocolVersions"] = ["grpc-v2"]
    assert translate(clash, load(SR_PRIORITY)).problems == ()


def test_a_cluster_runtime_clashing_with_a_built_in_is_refused() -> None:
    clash = load(CSR_MLSERVER)
    clash["spec"]["supportedModelFormats"][0]["priority"] = 2
    with pytest.raises(InvalidError) as caught:
        translate(clash)
    assert "kserve-mlserver" in caught.value.message


def test_one_format_with_two_priorities_in_a_runtime_is_refused() -> None:
    runtime = load(SR_PRIORITY)
    runtime["spec"]["supportedModelFormats"].append(
        {"name": "sklearn", "version": "0", "autoSelect": True, "priority": 2}
    )
    with pytest.raises(InvalidError) as caught:
        translate(runtime)
    assert caught.value.field == "spec.supportedModelFormats[1].priority"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"containers": []}, "spec.containers"),
        ({"containers": [{"image": "x"}]}, "spec.containers[0].name"),
        ({"protocolVersions": ["v9"]}, "spec.protocolVersions[0]"),
        (
            {"supportedModelFormats": [{"name": "sklearn", "autoSelect": True, "priority": 0}]},
            "spec.supportedModelFormats[0].priority",
        ),
        (
            {"containers": [{"name": "kserve-container", "resources": {"limits": {"memory": "lots"}}}]},
            "spec.containers[0].resources.limits.memory",
        ),
    ],
)
def test_bad_runtimes_are_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    runtime = load(SR_PRIORITY)
    runtime["spec"].update(change)
    with pytest.raises(InvalidError) as caught:
        translate(runtime)
    assert caught.value.field == field


def test_a_runtime_status_is_empty() -> None:
    manifest = load(SR_PRIORITY)
    importer = importer_for(manifest["apiVersion"], manifest["kind"])
    assert importer is not None
    translation = translate(manifest)
    assert importer.status(document(manifest), translation, FakeNatives(), StatusContext(GATEWAY)) == {}
