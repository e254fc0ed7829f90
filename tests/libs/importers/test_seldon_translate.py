"""SeldonDeployment -> native resources: the seeds' and Seldon docs' manifests, graphs, traffic,
and the webhook's rules as errors naming the field."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.importers import importer_for
from modelplane.libs.resources.importers.base import NOT_SUPPORTED_LOCALLY, StaticContext, Translation
from modelplane.libs.resources.manifests import parse_manifest, to_manifest
from modelplane.libs.resources.types import (
    Autoscaling,
    Experiment,
    ExperimentCandidate,
    ExperimentMirror,
    Model,
    Pipeline,
    PipelineOutput,
    PipelineStep,
)

# The seed's first example (Seldon's prepackaged-servers page), exactly as written.
SEED_SKLEARN = """
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

# The seed's credentials example: envSecretRefName on an s3:// model.
SEED_SECRET = """
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
      modelUri: s3://seldon-models/sklearn/iris
      envSecretRefName: seldon-init-container-secret
      name: classifier
    name: default
    replicas: 1
"""

# The seed's resources example: a skeleton container named like the node.
SEED_RESOURCES = """
apiVersion: machinelearning.seldon.io/v1alpha2
kind: SeldonDeployment
metadata:
  name: sklearn
spec:
  name: iris
  predictors:
  - componentSpecs:
    - spec:
        containers:
        - name: classifier
          resources:
            requests:
              memory: 50Mi
    graph:
      children: []
      implementation: SKLEARN_SERVER
      modelUri: gs://seldon-models/sklearn/iris
      name: classifier
    name: default
    replicas: 1
"""

# Seldon's canary + shadow docs: two predictors 80/20 and a shadow.
TRAFFIC_SPLIT = """
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
      modelUri: gs://seldon-models/sklearn/iris
  - name: canary
    traffic: 20
    replicas: 1
    graph:
      name: classifier
      implementation: XGBOOST_SERVER
      modelUri: gs://seldon-models/xgboost/iris
  - name: shadow
    shadow: true
    replicas: 1
    graph:
      name: classifier
      implementation: SKLEARN_SERVER
      modelUri: gs://seldon-models/sklearn/iris2
"""

# A graph of two models: a MODEL with one child is a chain.
TWO_MODEL_GRAPH = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: chain
spec:
  protocol: v2
  predictors:
  - name: default
    graph:
      name: first
      type: MODEL
      implementation: SKLEARN_SERVER
      modelUri: gs://models/first
      children:
      - name: second
        type: MODEL
        implementation: SKLEARN_SERVER
        modelUri: gs://models/second
        children: []
"""

SELDON_PROTOCOL = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: iris
spec:
  protocol: seldon
  predictors:
  - name: default
    graph:
      name: classifier
      implementation: SKLEARN_SERVER
      modelUri: gs://seldon-models/sklearn/iris
      parameters:
      - name: method
        type: STRING
        value: predict
"""


def load(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def translate(doc: dict[str, Any]) -> Translation:
    importer = importer_for(doc["apiVersion"], doc["kind"])
    assert importer is not None
    return importer.translate(doc, StaticContext())


def by_name(translation: Translation) -> dict[tuple[str, str], Any]:
    return {(r.kind, r.meta.name): r for r in translation.resources}


def predictor(doc: dict[str, Any], index: int = 0) -> dict[str, Any]:
    value = doc["spec"]["predictors"][index]
    assert isinstance(value, dict)
    return value


def graph(doc: dict[str, Any], index: int = 0) -> dict[str, Any]:
    value = predictor(doc, index)["graph"]
    assert isinstance(value, dict)
    return value


def only_model(doc: dict[str, Any]) -> Model:
    (model,) = translate(doc).resources
    assert isinstance(model, Model)
    return model


def error_of(doc: dict[str, Any]) -> InvalidError:
    with pytest.raises(InvalidError) as caught:
        translate(doc)
    return caught.value


@pytest.mark.parametrize(
    "text", [SEED_SKLEARN, SEED_SECRET, SEED_RESOURCES, TRAFFIC_SPLIT, TWO_MODEL_GRAPH, SELDON_PROTOCOL]
)
def test_every_native_survives_the_native_validation(text: str) -> None:
    """Each produced resource is what parse_manifest reads back from its own manifest."""
    translation = translate(load(text))
    assert translation.resources
    for resource in translation.resources:
        assert parse_manifest(to_manifest(resource)) == resource


@pytest.mark.parametrize("api", ["v1", "v1alpha2", "v1alpha3"])
def test_all_three_api_versions_are_registered(api: str) -> None:
    """v1, v1alpha2 and v1alpha3 share one schema and one importer."""
    doc = load(SEED_SKLEARN)
    doc["apiVersion"] = f"machinelearning.seldon.io/{api}"
    assert by_name(translate(doc))[("Model", "sklearn")].spec.storage_uri == "gs://seldon-models/sklearn/iris"


def test_seed_sklearn_server_is_one_model_named_like_the_deployment() -> None:
    """The seed's SKLEARN_SERVER becomes Model <name> on MLServer (sklearn), no Experiment."""
    translation = translate(load(SEED_SKLEARN))
    assert translation.primary == "sklearn"
    assert translation.problems == ()
    (model,) = translation.resources
    assert isinstance(model, Model)
    assert model.meta.name == "sklearn"
    assert model.spec.requirements == ("sklearn",)
    assert model.spec.replicas == 1
    assert model.spec.secret_name == ""


def test_env_secret_ref_name_becomes_the_secret_name() -> None:
    """envSecretRefName names the secret the storage service reads for the s3:// fetch."""
    (model,) = translate(load(SEED_SECRET)).resources
    assert isinstance(model, Model)
    assert model.spec.storage_uri == "s3://seldon-models/sklearn/iris"
    assert model.spec.secret_name == "seldon-init-container-secret"


def test_container_memory_request_becomes_model_memory() -> None:
    """A skeleton container named like the node gives the Model its memory."""
    (model,) = translate(load(SEED_RESOURCES)).resources
    assert isinstance(model, Model)
    assert model.spec.memory_bytes == 50 * 2**20


def test_memory_limit_is_used_when_no_request() -> None:
    doc = load(SEED_RESOURCES)
    container = predictor(doc)["componentSpecs"][0]["spec"]["containers"][0]
    container["resources"] = {"limits": {"memory": "1Gi"}}
    (model,) = translate(doc).resources
    assert isinstance(model, Model)
    assert model.spec.memory_bytes == 2**30


def test_traffic_split_and_shadow_make_an_experiment() -> None:
    """80/20 predictors are candidates of Experiment <name> (default <name>); the shadow mirrors all."""
    translation = translate(load(TRAFFIC_SPLIT))
    found = by_name(translation)
    assert found[("Model", "iris")].spec.requirements == ("sklearn",)
    assert found[("Model", "iris-canary")].spec.requirements == ("xgboost",)
    assert found[("Model", "iris-shadow")].spec.storage_uri == "gs://seldon-models/sklearn/iris2"
    experiment = found[("Experiment", "iris")]
    assert isinstance(experiment, Experiment)
    assert experiment.spec.default == "iris"
    assert experiment.spec.candidates == (
        ExperimentCandidate("iris", 80),
        ExperimentCandidate("iris-canary", 20),
    )
    assert experiment.spec.mirror == ExperimentMirror("iris-shadow", 100)
    assert experiment.spec.resource_type == "model"
    # The experiment is applied after what it routes to.
    assert translation.resources[-1] is experiment


def test_shadow_traffic_is_the_mirrored_percent() -> None:
    doc = load(TRAFFIC_SPLIT)
    predictor(doc, 2)["traffic"] = 25
    experiment = by_name(translate(doc))[("Experiment", "iris")]
    assert experiment.spec.mirror == ExperimentMirror("iris-shadow", 25)


def test_single_predictor_with_shadow_is_an_experiment_of_one_candidate() -> None:
    doc = load(TRAFFIC_SPLIT)
    del doc["spec"]["predictors"][1]
    predictor(doc)["traffic"] = 100
    experiment = by_name(translate(doc))[("Experiment", "iris")]
    assert experiment.spec.candidates == (ExperimentCandidate("iris", 100),)
    assert experiment.spec.mirror == ExperimentMirror("iris-shadow", 100)


def test_first_predictor_taking_traffic_gets_the_deployment_name() -> None:
    """A 0-traffic first predictor does not take the name its callers use."""
    doc = load(TRAFFIC_SPLIT)
    predictor(doc)["traffic"] = 0
    predictor(doc, 1)["traffic"] = 100
    found = by_name(translate(doc))
    assert found[("Model", "iris")].spec.requirements == ("xgboost",)
    assert found[("Model", "iris-main")].spec.requirements == ("sklearn",)
    assert found[("Experiment", "iris")].spec.candidates == (ExperimentCandidate("iris", 100),)


def test_two_model_graph_is_a_chain_pipeline() -> None:
    """MODEL with one child: Pipeline <name>, the child's input the parent's output."""
    translation = translate(load(TWO_MODEL_GRAPH))
    found = by_name(translation)
    assert translation.primary == "chain"
    assert set(found) == {("Model", "chain-first"), ("Model", "chain-second"), ("Pipeline", "chain")}
    pipeline = found[("Pipeline", "chain")]
    assert isinstance(pipeline, Pipeline)
    assert pipeline.spec.steps == (
        PipelineStep(name="chain-first"),
        PipelineStep(name="chain-second", inputs=("chain-first",)),
    )
    assert pipeline.spec.output == PipelineOutput(steps=("chain-second",))
    # Models are applied before the pipeline that calls them.
    assert [r.kind for r in translation.resources] == ["Model", "Model", "Pipeline"]


def test_model_with_two_children_fans_out_and_answers_with_the_first_branch() -> None:
    """The executor sends a MODEL's output to every child and answers with children[0]'s."""
    doc = load(TWO_MODEL_GRAPH)
    graph(doc)["children"].append(
        {"name": "third", "implementation": "XGBOOST_SERVER", "modelUri": "gs://m/3"}
    )
    pipeline = by_name(translate(doc))[("Pipeline", "chain")]
    assert pipeline.spec.steps[1:] == (
        PipelineStep(name="chain-second", inputs=("chain-first",)),
        PipelineStep(name="chain-third", inputs=("chain-first",)),
    )
    assert pipeline.spec.output == PipelineOutput(steps=("chain-second",))


def test_mixed_single_model_and_graph_predictors_are_all_pipelines() -> None:
    """An Experiment routes among one kind: the single model is wrapped in a one-step Pipeline."""
    doc = load(TRAFFIC_SPLIT)
    graph(doc, 1)["children"] = [
        {"name": "post", "implementation": "SKLEARN_SERVER", "modelUri": "gs://m/post"}
    ]
    found = by_name(translate(doc))
    experiment = found[("Experiment", "iris")]
    assert experiment.spec.resource_type == "pipeline"
    assert experiment.spec.candidates == (
        ExperimentCandidate("iris", 80),
        ExperimentCandidate("iris-canary", 20),
    )
    assert experiment.spec.mirror == ExperimentMirror("iris-shadow", 100)
    assert found[("Pipeline", "iris")].spec.steps == (PipelineStep(name="iris-classifier"),)
    assert found[("Pipeline", "iris-canary")].spec.models() == ("iris-canary-classifier", "iris-canary-post")
    assert ("Model", "iris") not in found


def test_random_abtest_at_the_root_is_a_weighted_split() -> None:
    """RANDOM_ABTEST: child 0 takes ratioA of the traffic under the deployment's name."""
    doc = load(SELDON_PROTOCOL)
    doc["spec"]["predictors"][0]["graph"] = {
        "name": "ab",
        "implementation": "RANDOM_ABTEST",
        "parameters": [{"name": "ratioA", "value": "0.7", "type": "FLOAT"}],
        "children": [
            {"name": "a", "implementation": "SKLEARN_SERVER", "modelUri": "gs://m/a"},
            {"name": "b", "implementation": "SKLEARN_SERVER", "modelUri": "gs://m/b"},
        ],
    }
    found = by_name(translate(doc))
    assert found[("Model", "iris")].spec.storage_uri == "gs://m/a"
    assert found[("Model", "iris-b")].spec.storage_uri == "gs://m/b"
    experiment = found[("Experiment", "iris")]
    assert experiment.spec.default == "iris"
    assert experiment.spec.candidates == (
        ExperimentCandidate("iris", 7000),
        ExperimentCandidate("iris-b", 3000),
    )


def test_random_abtest_below_the_root_is_not_supported_locally() -> None:
    doc = load(TWO_MODEL_GRAPH)
    graph(doc)["children"][0] = {
        "name": "ab",
        "implementation": "RANDOM_ABTEST",
        "children": [{"name": "x", "implementation": "SKLEARN_SERVER", "modelUri": "gs://m/x"}] * 1,
    }
    translation = translate(doc)
    assert translation.resources == ()
    assert translation.primary == ""
    (problem,) = translation.problems
    assert problem.field == "spec.predictors[0].graph.children[0].implementation"
    assert problem.reason == NOT_SUPPORTED_LOCALLY


def test_simple_router_is_replaced_by_its_first_child() -> None:
    doc = load(SELDON_PROTOCOL)
    doc["spec"]["predictors"][0]["graph"] = {
        "name": "router",
        "implementation": "SIMPLE_ROUTER",
        "children": [
            {"name": "a", "implementation": "SKLEARN_SERVER", "modelUri": "gs://m/a"},
            {"name": "b", "implementation": "SKLEARN_SERVER", "modelUri": "gs://m/b"},
        ],
    }
    (model,) = translate(doc).resources
    assert isinstance(model, Model)
    assert (model.meta.name, model.spec.storage_uri) == ("iris", "gs://m/a")


def test_custom_containers_are_accepted_with_a_problem_and_nothing_applied() -> None:
    """A TRANSFORMER with its own container needs a cluster: reported per node, no natives."""
    doc = load(TWO_MODEL_GRAPH)
    predictor(doc)["componentSpecs"] = [{"spec": {"containers": [{"name": "prep", "image": "me/prep:1"}]}}]
    doc["spec"]["predictors"][0]["graph"] = {"name": "prep", "type": "TRANSFORMER", "children": [graph(doc)]}
    translation = translate(doc)
    assert translation.resources == ()
    (problem,) = translation.problems
    assert problem.field == "spec.predictors[0].graph.implementation"
    assert "prep" in problem.message
    assert "container" in problem.message


def test_unservable_shadow_leaves_only_the_mirror_out() -> None:
    doc = load(TRAFFIC_SPLIT)
    predictor(doc, 2)["componentSpecs"] = [{"spec": {"containers": [{"name": "classifier", "image": "x"}]}}]
    del graph(doc, 2)["implementation"]
    found = by_name(translate(doc))
    assert found[("Experiment", "iris")].spec.mirror is None
    assert ("Model", "iris-shadow") not in found


def test_triton_and_tensorflow_servers_still_produce_a_model_with_a_problem() -> None:
    for implementation, requirement in (("TRITON_SERVER", "triton"), ("TENSORFLOW_SERVER", "tensorflow")):
        doc = load(SEED_SKLEARN)
        graph(doc)["implementation"] = implementation
        translation = translate(doc)
        (model,) = translation.resources
        assert isinstance(model, Model)
        assert model.spec.requirements == (requirement,)
        (problem,) = translation.problems
        assert problem.field == "spec.predictors[0].graph.implementation"
        assert problem.reason == NOT_SUPPORTED_LOCALLY


def test_tempo_server_is_a_problem_without_model() -> None:
    doc = load(SEED_SKLEARN)
    graph(doc)["implementation"] = "TEMPO_SERVER"
    translation = translate(doc)
    assert translation.resources == ()
    assert translation.problems[0].field == "spec.predictors[0].graph.implementation"


def test_parameters_become_model_parameters() -> None:
    """SKLEARN_SERVER's method is what MLServer's sklearn runtime calls (extra.predict_fn)."""
    (model,) = translate(load(SELDON_PROTOCOL)).resources
    assert isinstance(model, Model)
    assert model.spec.parameters == {"extra.predict_fn": "predict"}
    doc = load(SEED_SKLEARN)
    graph(doc)["parameters"] = [{"name": "threshold", "value": "0.5", "type": "FLOAT"}]
    (model,) = translate(doc).resources
    assert isinstance(model, Model)
    assert model.spec.parameters == {"threshold": "0.5", "extra.predict_fn": "predict_proba"}


def test_sklearn_answers_predict_proba_on_the_seldon_protocol_only() -> None:
    """Seldon's own sklearn server answered predict_proba; under v2 Seldon ran MLServer (predict)."""
    seldon = translate(load(SEED_SKLEARN)).resources[0]
    assert isinstance(seldon, Model)
    assert seldon.spec.parameters == {"extra.predict_fn": "predict_proba"}
    doc = load(SEED_SKLEARN)
    doc["spec"]["protocol"] = "v2"
    v2 = translate(doc).resources[0]
    assert isinstance(v2, Model)
    assert v2.spec.parameters == {}


def test_an_unknown_sklearn_method_names_the_parameter() -> None:
    doc = load(SEED_SKLEARN)
    graph(doc)["parameters"] = [{"name": "method", "value": "decision_function", "type": "STRING"}]
    with pytest.raises(InvalidError) as caught:
        translate(doc)
    assert caught.value.field == "spec.predictors[0].graph.parameters[0].value"


def test_huggingface_without_model_uri_loads_the_pretrained_model_from_the_hub() -> None:
    doc = load(SEED_SKLEARN)
    graph(doc).update(
        implementation="HUGGINGFACE_SERVER",
        parameters=[
            {"name": "task", "value": "text-generation", "type": "STRING"},
            {"name": "pretrained_model", "value": "distilgpt2", "type": "STRING"},
        ],
    )
    del graph(doc)["modelUri"]
    (model,) = translate(doc).resources
    assert isinstance(model, Model)
    assert model.spec.storage_uri == "hf://distilgpt2"
    assert model.spec.requirements == ("huggingface",)


@pytest.mark.parametrize(
    "uri",
    [
        "gs://b/m",
        "s3://b/m",
        "https://acct.blob.core.windows.net/c/m",
        "http://host/m.tar.gz",
        "file:///models/m",
        "/models/m",
        "pvc://claim/m",
    ],
)
def test_storage_schemes_pass_through(uri: str) -> None:
    doc = load(SEED_SKLEARN)
    graph(doc)["modelUri"] = uri
    (model,) = translate(doc).resources
    assert isinstance(model, Model)
    assert model.spec.storage_uri == uri


def test_rclone_remote_is_refused_naming_the_field() -> None:
    """Seldon's rclone example (mys3:sklearn/iris) names a config we do not read."""
    doc = load(SEED_SKLEARN)
    graph(doc)["modelUri"] = "mys3:sklearn/iris"
    error = error_of(doc)
    assert error.field == "spec.predictors[0].graph.modelUri"
    assert "s3://" in error.message


def test_replicas_follow_seldons_precedence() -> None:
    """componentSpec.replicas, else predictor.replicas, else spec.replicas, else 1."""
    doc = load(SEED_RESOURCES)
    doc["spec"]["replicas"] = 4
    del predictor(doc)["replicas"]
    assert only_model(doc).spec.replicas == 4
    predictor(doc)["replicas"] = 3
    assert only_model(doc).spec.replicas == 3
    predictor(doc)["componentSpecs"][0]["replicas"] = 2
    assert only_model(doc).spec.replicas == 2
    del doc["spec"]["replicas"], predictor(doc)["replicas"], predictor(doc)["componentSpecs"][0]["replicas"]
    assert only_model(doc).spec.replicas == 1


def test_hpa_spec_becomes_native_autoscaling_and_reports_cpu_metrics() -> None:
    doc = load(SEED_RESOURCES)
    predictor(doc)["componentSpecs"][0]["hpaSpec"] = {
        "minReplicas": 2,
        "maxReplicas": 5,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "targetAverageUtilization": 70}}],
    }
    translation = translate(doc)
    model = translation.resources[0]
    assert isinstance(model, Model)
    assert (model.spec.replicas, model.spec.min_replicas, model.spec.max_replicas) == (2, 2, 5)
    assert model.spec.autoscaling == Autoscaling()
    (problem,) = translation.problems
    assert problem.field == "spec.predictors[0].componentSpecs[0].hpaSpec.metrics"
    assert "cpu" in problem.message


def test_long_names_are_shortened_with_a_stable_hash() -> None:
    doc = load(TRAFFIC_SPLIT)
    long_name = "canary-" + "x" * 56
    predictor(doc, 1)["name"] = long_name
    first = translate(doc)
    names = [r.meta.name for r in first.resources]
    assert all(len(n) <= 63 for n in names)
    assert names == [r.meta.name for r in translate(doc).resources]
    assert any("shortened" in note for note in first.notes)


def test_explainer_is_reported_and_the_predictor_still_served() -> None:
    doc = load(SEED_SKLEARN)
    predictor(doc)["explainer"] = {"type": "AnchorTabular", "modelUri": "gs://m/explainer"}
    translation = translate(doc)
    assert len(translation.resources) == 1
    assert translation.problems[0].field == "spec.predictors[0].explainer"


# ---- the webhook's rules: InvalidError naming the field ------------------------------------


def test_traffic_not_summing_to_100_is_refused() -> None:
    doc = load(TRAFFIC_SPLIT)
    predictor(doc, 1)["traffic"] = 30
    error = error_of(doc)
    assert error.field == "spec.predictors[0].traffic"
    assert "110" in error.message


def test_single_predictor_traffic_must_be_0_or_100() -> None:
    doc = load(SEED_SKLEARN)
    predictor(doc)["traffic"] = 50
    assert error_of(doc).field == "spec.predictors[0].traffic"


def test_two_shadows_are_refused() -> None:
    doc = load(TRAFFIC_SPLIT)
    doc["spec"]["predictors"].append({**predictor(doc, 2), "name": "shadow2"})
    assert error_of(doc).field == "spec.predictors[3].shadow"


def test_a_shadow_alone_is_refused() -> None:
    doc = load(SEED_SKLEARN)
    predictor(doc)["shadow"] = True
    assert error_of(doc).field == "spec.predictors[0].shadow"


def test_duplicate_predictor_names_are_refused() -> None:
    doc = load(TRAFFIC_SPLIT)
    predictor(doc, 1)["name"] = "main"
    assert error_of(doc).field == "spec.predictors[1].name"


def test_prepackaged_server_needs_a_model_uri() -> None:
    doc = load(TWO_MODEL_GRAPH)
    del graph(doc)["children"][0]["modelUri"]
    assert error_of(doc).field == "spec.predictors[0].graph.children[0].modelUri"


def test_tensorflow_protocol_is_refused_for_mlserver_servers() -> None:
    doc = load(SEED_SKLEARN)
    doc["spec"]["protocol"] = "tensorflow"
    assert error_of(doc).field == "spec.predictors[0].graph.implementation"


def test_unknown_protocol_is_refused() -> None:
    doc = load(SEED_SKLEARN)
    doc["spec"]["protocol"] = "grpc"
    assert error_of(doc).field == "spec.protocol"


def test_custom_node_without_its_container_is_refused() -> None:
    doc = load(SEED_SKLEARN)
    del graph(doc)["implementation"]
    error = error_of(doc)
    assert error.field == "spec.predictors[0].graph.name"
    assert "container" in error.message


def test_logger_needs_a_mode() -> None:
    doc = load(SEED_SKLEARN)
    graph(doc)["logger"] = {"url": "http://logger"}
    assert error_of(doc).field == "spec.predictors[0].graph.logger.mode"


@pytest.mark.parametrize(
    ("parameter", "field"),
    [
        ({"name": "n", "value": "two", "type": "INT"}, "value"),
        ({"name": "x", "value": "abc", "type": "FLOAT"}, "value"),
        ({"name": "b", "value": "maybe", "type": "BOOL"}, "value"),
        ({"name": "s", "value": "1", "type": "LONG"}, "type"),
    ],
)
def test_parameters_must_parse_as_their_type(parameter: dict[str, str], field: str) -> None:
    doc = load(SELDON_PROTOCOL)
    graph(doc)["parameters"] = [{"name": "ok", "value": "1", "type": "INT"}, parameter]
    assert error_of(doc).field == f"spec.predictors[0].graph.parameters[1].{field}"


def test_duplicate_node_names_in_a_graph_are_refused() -> None:
    doc = load(TWO_MODEL_GRAPH)
    graph(doc)["children"][0]["name"] = "first"
    assert error_of(doc).field == "spec.predictors[0].graph.children[0].name"


def test_invalid_deployment_name_is_refused() -> None:
    doc = load(SEED_SKLEARN)
    doc["metadata"]["name"] = "Iris.v1"
    assert error_of(doc).field == "metadata.name"
