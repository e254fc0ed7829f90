"""InferenceGraph manifests (KServe and native): a sample per router type, validation, round trips."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources import convert
from modelplane.libs.resources.manifests import parse_manifest, to_manifest
from modelplane.libs.resources.types import GraphStep, InferenceGraph

KSERVE = "serving.kserve.io/v1alpha1"
NATIVE = "modelplane.io/v1alpha1"

# KServe's InferenceGraph samples (one per router type), as users have them.
SAMPLES = {
    "sequence": """
metadata: {name: model-chainer}
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
      - serviceName: cat-dog-classifier
        name: cat_dog_classifier
      - serviceName: dog-breed-classifier
        name: dog_breed_classifier
        data: $request
        condition: "[@this].#(predictions.0==\\"dog\\")"
        dependency: Hard
  resources:
    requests: {cpu: 100m, memory: 256Mi}
  minReplicas: 1
  maxReplicas: 3
  scaleTarget: 10
  scaleMetric: concurrency
  timeout: 30
""",
    "switch": """
metadata: {name: switch-graph}
spec:
  nodes:
    root:
      routerType: Switch
      steps:
      - serviceName: sklearn-iris
        condition: "[@this].#(instances.0.0>5)"
      - serviceName: xgboost-iris
        condition: "[@this].#(instances.0.0<=5)"
""",
    "ensemble": """
metadata: {name: ensemble-graph}
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
      - nodeName: ensemble
    ensemble:
      routerType: Ensemble
      steps:
      - serviceName: sklearn-iris
        name: sklearn-iris
      - serviceName: xgboost-iris
        name: xgboost-iris
""",
    "splitter": """
metadata: {name: splitter-graph}
spec:
  nodes:
    root:
      routerType: Splitter
      steps:
      - serviceName: sklearn-iris
        weight: 20
      - serviceName: xgboost-iris
        weight: 80
""",
}


def sample(name: str, api: str = KSERVE) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(SAMPLES[name])
    return {"apiVersion": api, "kind": "InferenceGraph", **doc}


def graph_doc(nodes: dict[str, Any], api: str = NATIVE, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": api,
        "kind": "InferenceGraph",
        "metadata": {"name": "g"},
        "spec": {"nodes": nodes, **spec},
    }


def root(router: str, *steps: dict[str, Any], **others: Any) -> dict[str, Any]:
    return {"root": {"routerType": router, "steps": list(steps)}, **others}


def refused(doc: dict[str, Any]) -> InvalidError:
    with pytest.raises(InvalidError) as caught:
        parse_manifest(doc)
    return caught.value


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_kserve_samples_parse_and_round_trip(name: str) -> None:
    """Every KServe sample parses (scaling fields ignored); native manifest and protobuf read back equal."""
    graph = parse_manifest(sample(name))
    assert isinstance(graph, InferenceGraph)
    assert graph.meta.imported_from == "serving.kserve.io/v1alpha1/InferenceGraph"
    assert parse_manifest(to_manifest(graph)).spec == graph.spec
    assert convert.graph_from_pb(convert.graph_to_pb(graph)) == graph
    assert convert.resource_from_pb(convert.resource_to_pb(graph)) == graph


def test_sample_fields_reach_the_domain() -> None:
    """Steps keep their target, data, condition, dependency and weight; timeout is in seconds."""
    sequence = parse_manifest(sample("sequence"))
    assert isinstance(sequence, InferenceGraph)
    assert sequence.spec.timeout_seconds == 30.0
    assert sequence.spec.nodes["root"].steps[1] == GraphStep(
        name="dog_breed_classifier",
        service_name="dog-breed-classifier",
        data="$request",
        condition='[@this].#(predictions.0=="dog")',
        dependency="Hard",
    )
    assert sequence.spec.models() == ("cat-dog-classifier", "dog-breed-classifier")
    splitter = parse_manifest(sample("splitter"))
    assert isinstance(splitter, InferenceGraph)
    assert [s.weight for s in splitter.spec.nodes["root"].steps] == [20, 80]
    ensemble = parse_manifest(sample("ensemble"))
    assert isinstance(ensemble, InferenceGraph)
    assert list(ensemble.spec.nodes) == ["root", "ensemble"]


def test_native_form_refuses_kserve_scaling_fields() -> None:
    """KServe's minReplicas is ignored there; the native form names it as unknown."""
    error = refused(graph_doc(root("Sequence", {"serviceName": "a"}), minReplicas=1))
    assert (error.field, error.message) == ("spec.minReplicas", "unknown field")
    typo = refused(graph_doc(root("Sequence", {"serviceNme": "a"})))
    assert typo.field == "spec.nodes.root.steps[0].serviceNme"


@pytest.mark.parametrize(
    ("nodes", "field", "reason"),
    [
        (
            {"main": {"routerType": "Sequence", "steps": [{"serviceName": "a"}]}},
            "spec.nodes",
            "needs a node named 'root'",
        ),
        (
            root("Pipeline", {"serviceName": "a"}),
            "spec.nodes.root.routerType",
            "must be one of Sequence, Splitter, Ensemble, Switch",
        ),
        (root("Sequence"), "spec.nodes.root.steps", "needs at least one step"),
        (
            root("Sequence", {"name": "x"}),
            "spec.nodes.root.steps[0]",
            "exactly one of serviceName, serviceUrl or nodeName (given: none)",
        ),
        (
            root("Sequence", {"serviceName": "a", "serviceUrl": "http://x"}),
            "spec.nodes.root.steps[0]",
            "(given: serviceName, serviceUrl)",
        ),
        (
            root("Sequence", {"serviceName": "Not_A_Model"}),
            "spec.nodes.root.steps[0].serviceName",
            "not a valid model name",
        ),
        (
            root("Sequence", {"serviceUrl": "ftp://host/x"}),
            "spec.nodes.root.steps[0].serviceUrl",
            "must be an http:// or https:// URL",
        ),
        (
            root("Sequence", {"nodeName": "missing"}),
            "spec.nodes.root.steps[0].nodeName",
            "names node 'missing', which is not a node",
        ),
        (
            root(
                "Sequence", {"nodeName": "a"}, a={"routerType": "Sequence", "steps": [{"nodeName": "root"}]}
            ),
            "spec.nodes",
            "cycle root -> a -> root",
        ),
        (
            root("Splitter", {"serviceName": "a", "weight": 50}, {"serviceName": "b", "weight": 40}),
            "spec.nodes.root.steps",
            "sum to 90; they must sum to 100",
        ),
        (
            root("Splitter", {"serviceName": "a", "weight": 100}, {"serviceName": "b"}),
            "spec.nodes.root.steps[1].weight",
            "needs a weight > 0, got 0",
        ),
        (
            root("Sequence", {"serviceName": "a", "weight": 10}),
            "spec.nodes.root.steps[0].weight",
            "only Splitter steps take a weight",
        ),
        (
            root("Switch", {"serviceName": "a", "condition": "x"}, {"serviceName": "b"}),
            "spec.nodes.root.steps[1].condition",
            "a Switch step needs a condition",
        ),
        (
            root("Sequence", {"serviceName": "a", "data": "$body"}),
            "spec.nodes.root.steps[0].data",
            "must be $request or $response",
        ),
        (
            root("Sequence", {"serviceName": "a", "dependency": "Strong"}),
            "spec.nodes.root.steps[0].dependency",
            "must be one of Soft, Hard",
        ),
        (
            root("Ensemble", {"serviceName": "a"}, {"serviceName": "a"}),
            "spec.nodes.root.steps[1].name",
            "two steps named 'a'",
        ),
        (
            root("Ensemble", {"serviceName": "a", "name": "x"}, {"serviceName": "b", "name": "x"}),
            "spec.nodes.root.steps[1].name",
            "two steps named 'x'",
        ),
        ({"root": {"steps": []}}, "spec.nodes.root.routerType", "is required"),
    ],
)
def test_invalid_graph_names_the_field_and_reason(nodes: dict[str, Any], field: str, reason: str) -> None:
    """Each rule fails naming the field path and the reason."""
    error = refused(graph_doc(nodes))
    assert error.field == field
    assert reason in error.message


def test_negative_timeout_is_refused() -> None:
    """timeout is seconds >= 0."""
    error = refused(graph_doc(root("Sequence", {"serviceName": "a"}), api=KSERVE, timeout=-1))
    assert error.field == "spec.timeout"


def test_ensemble_names_default_to_the_target() -> None:
    """Two Ensemble steps calling different models need no names."""
    graph = parse_manifest(graph_doc(root("Ensemble", {"serviceName": "a"}, {"serviceUrl": "https://x/v2"})))
    assert isinstance(graph, InferenceGraph)
