"""Experiment manifests (native and Seldon v2): parsing, Seldon's validation rules, round trips."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources import convert
from modelplane.libs.resources.manifests import parse_manifest, to_manifest
from modelplane.libs.resources.types import Experiment, ExperimentCandidate, ExperimentMirror


def experiment_doc(api: str = "modelplane.io/v1alpha1", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "default": "iris",
        "candidates": [{"name": "iris", "weight": 50}, {"name": "iris2", "weight": 50}],
    }
    body.update(spec)
    return {"apiVersion": api, "kind": "Experiment", "metadata": {"name": "ab"}, "spec": body}


def test_seldon_experiment_is_accepted_unchanged() -> None:
    """Seldon's experiment sample (default, candidates, mirror) parses with its fields kept."""
    doc = experiment_doc(
        "mlops.seldon.io/v1alpha1",
        mirror={"name": "iris3", "percent": 10},
        resourceType="model",
    )
    doc["metadata"]["namespace"] = "seldon-mesh"
    experiment = parse_manifest(doc)
    assert isinstance(experiment, Experiment)
    # In its namespace: the services know it and its models by their namespaced names.
    assert experiment.meta.namespace == "seldon-mesh"
    assert experiment.meta.name == "seldon-mesh--ab"
    assert experiment.spec.default == "seldon-mesh--iris"
    assert experiment.spec.candidates == (
        ExperimentCandidate("seldon-mesh--iris", 50),
        ExperimentCandidate("seldon-mesh--iris2", 50),
    )
    assert experiment.spec.mirror == ExperimentMirror("seldon-mesh--iris3", 10)
    assert experiment.spec.resource_type == "model"
    assert experiment.meta.imported_from == "mlops.seldon.io/v1alpha1/Experiment"
    shown = to_manifest(experiment)
    assert shown["metadata"] == {"name": "ab", "namespace": "seldon-mesh"}
    assert shown["spec"]["default"] == "iris"
    assert shown["spec"]["mirror"] == {"name": "iris3", "percent": 10}


def test_mirror_only_and_no_default_are_valid() -> None:
    """An experiment may have only a mirror, and needs no default."""
    experiment = parse_manifest(
        experiment_doc(default=None, candidates=[], mirror={"name": "m", "percent": 0})
    )
    assert isinstance(experiment, Experiment)
    assert experiment.spec.candidates == ()
    assert experiment.spec.default == ""
    assert experiment.spec.mirror == ExperimentMirror("m", 0)


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"candidates": [], "default": None}, "spec.candidates", "at least one candidate or a mirror"),
        ({"default": "other"}, "spec.default", "one of the candidates"),
        (
            {"candidates": [{"name": "iris", "weight": 1}, {"name": "iris", "weight": 2}]},
            "spec.candidates[1].name",
            "twice",
        ),
        ({"mirror": {"name": "iris2", "percent": 5}}, "spec.mirror.name", "already a candidate"),
        (
            {"candidates": [{"name": "iris", "weight": 0}]},
            "spec.candidates[0].weight",
            "must be > 0",
        ),
        (
            {"candidates": [{"name": "iris", "weight": -3}]},
            "spec.candidates[0].weight",
            "must be > 0",
        ),
        ({"candidates": [{"name": "iris"}]}, "spec.candidates[0].weight", "is required"),
        ({"mirror": {"name": "m", "percent": 101}}, "spec.mirror.percent", "between 0 and 100"),
        ({"mirror": {"name": "m", "percent": -1}}, "spec.mirror.percent", "between 0 and 100"),
        ({"mirror": {"name": "m"}}, "spec.mirror.percent", "is required"),
        ({"resourceType": "graph"}, "spec.resourceType", "model, pipeline"),
        ({"candidates": [{"name": "Bad_Name", "weight": 1}]}, "spec.candidates[0].name", "not a valid"),
        (
            {"candidates": [{"name": "iris", "weight": 1, "wieght": 2}]},
            "spec.candidates[0].wieght",
            "unknown",
        ),
        ({"extra": 1}, "spec.extra", "unknown field"),
    ],
)
def test_invalid_experiments_name_the_field(spec: dict[str, Any], field: str, words: str) -> None:
    """Each of Seldon's experiment rules fails with an InvalidError naming the field."""
    with pytest.raises(InvalidError) as caught:
        parse_manifest(experiment_doc(**spec))
    assert caught.value.field == field
    assert words in caught.value.message


def test_seldon_experiment_ignores_unknown_spec_fields() -> None:
    """Fields Seldon may add to its Experiment spec are ignored, as for its other kinds."""
    experiment = parse_manifest(experiment_doc("mlops.seldon.io/v1alpha1", future={"x": 1}))
    assert isinstance(experiment, Experiment)


@pytest.mark.parametrize(
    "spec",
    [
        {"mirror": {"name": "iris3", "percent": 0}},
        {"mirror": {"name": "iris3", "percent": 100}, "default": None},
        {"resourceType": "pipeline"},
    ],
)
def test_manifest_and_protobuf_round_trips_keep_the_experiment(spec: dict[str, Any]) -> None:
    """to_manifest -> parse_manifest and to_pb -> from_pb give the same experiment (mirror at 0% too)."""
    experiment = parse_manifest(experiment_doc(**spec))
    assert isinstance(experiment, Experiment)
    assert parse_manifest(to_manifest(experiment)) == experiment
    assert convert.experiment_from_pb(convert.experiment_to_pb(experiment)) == experiment
    assert convert.resource_from_pb(convert.resource_to_pb(experiment)) == experiment
