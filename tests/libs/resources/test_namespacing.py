"""Native resources in a namespace: service-wide names for the resource and its references,
undone when rendered (libs/resources/namespacing.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.manifests import parse_manifest, to_manifest
from modelplane.libs.resources.types import InferenceGraph, Model, Pipeline, Server, ServerConfig

SELDON = "mlops.seldon.io/v1alpha1"


def doc(kind: str, name: str, spec: dict[str, Any], namespace: str | None = "team-a") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": SELDON, "kind": kind, "metadata": metadata, "spec": spec}


def round_trips(manifest: dict[str, Any]) -> Any:
    """Parsed, and parsed again from its rendering to the same resource (kinds.validate's trip;
    only where it came from, imported_from, is not rendered)."""
    parsed = parse_manifest(manifest)
    again = parse_manifest(to_manifest(parsed))
    assert again == dataclasses.replace(parsed, meta=dataclasses.replace(parsed.meta, imported_from=""))
    return parsed


def test_a_pipelines_steps_and_every_reference_are_renamed_and_given_back() -> None:
    spec = {
        "input": {
            "externalInputs": ["other.outputs", "other.step.tfsimple1.outputs.OUTPUT0"],
            "tensorMap": {},
        },
        "steps": [
            {"name": "tfsimple1"},
            {
                "name": "tfsimple2",
                "inputs": ["tfsimple1.outputs.OUTPUT0", "chain.inputs.INPUT1"],
                "tensorMap": {"tfsimple1.outputs.OUTPUT0": "INPUT0"},
            },
        ],
        "output": {"steps": ["tfsimple2"]},
    }
    pipeline = round_trips(doc("Pipeline", "chain", spec))
    assert isinstance(pipeline, Pipeline)
    assert pipeline.meta.name == "team-a--chain"
    assert pipeline.spec.models() == ("team-a--tfsimple1", "team-a--tfsimple2")
    step = pipeline.spec.steps[1]
    assert "team-a--tfsimple1.outputs.OUTPUT0" in step.inputs
    assert "team-a--chain.inputs.INPUT1" in step.inputs
    assert step.tensor_map == {"team-a--tfsimple1.outputs.OUTPUT0": "INPUT0"}
    assert pipeline.spec.input is not None
    assert pipeline.spec.input.external_inputs == (
        "team-a--other.outputs",
        "team-a--other.step.team-a--tfsimple1.outputs.OUTPUT0",
    )
    shown = to_manifest(pipeline)
    assert shown["metadata"] == {"name": "chain", "namespace": "team-a"}
    assert [s["name"] for s in shown["spec"]["steps"]] == ["tfsimple1", "tfsimple2"]
    assert shown["spec"]["input"]["externalInputs"] == [
        "other.outputs",
        "other.step.tfsimple1.outputs.OUTPUT0",
    ]


def test_models_servers_graphs_and_cluster_wide_server_configs() -> None:
    model = round_trips(
        doc(
            "Model",
            "explainer",
            {"storageUri": "gs://b/e", "server": "mine", "explainer": {"modelRef": "iris"}},
        )
    )
    assert isinstance(model, Model)
    # Servers are one cluster-wide pool: a Model's server is named as it is.
    assert (model.meta.name, model.spec.server, model.spec.explainer_for) == (
        "team-a--explainer",
        "mine",
        "team-a--iris",
    )
    server = round_trips(doc("Server", "mine", {"serverConfig": "mlserver"}))
    assert isinstance(server, Server)
    assert (server.meta.name, server.meta.namespace, server.spec.server_config) == ("mine", "", "mlserver")
    config = round_trips(doc("ServerConfig", "mlserver", {"podSpec": {}}))
    assert isinstance(config, ServerConfig)
    assert (config.meta.name, config.meta.namespace) == ("mlserver", "")
    graph = round_trips(
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "InferenceGraph",
            "metadata": {"name": "g", "namespace": "team-a"},
            "spec": {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "iris"}]}}},
        }
    )
    assert isinstance(graph, InferenceGraph)
    assert graph.spec.models() == ("team-a--iris",)


def test_default_and_no_namespace_keep_names() -> None:
    for namespace in (None, "default", ""):
        model = parse_manifest(doc("Model", "iris", {"storageUri": "gs://b/i", "server": "s"}, namespace))
        assert isinstance(model, Model)
        assert (model.meta.name, model.meta.namespace, model.spec.server) == ("iris", "", "s")
        assert "namespace" not in to_manifest(model)["metadata"]


def test_bad_namespaces_and_names_too_long_together_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidError) as caught:
        parse_manifest(doc("Model", "iris", {"storageUri": "gs://b/i"}, "Team_A"))
    assert caught.value.field == "metadata.namespace"
    with pytest.raises(InvalidError) as caught:
        parse_manifest(doc("Model", "m" * 60, {"storageUri": "gs://b/i"}))
    assert caught.value.field == "metadata.name"
    with pytest.raises(InvalidError) as caught:
        parse_manifest(doc("Model", "iris", {"storageUri": "gs://b/i", "explainer": {"modelRef": "m" * 60}}))
    assert caught.value.field == "spec.explainer.modelRef"
