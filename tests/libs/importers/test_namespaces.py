"""Foreign resources outside ``default`` translate as ``<namespace>--<name>`` (importers.namespaces)."""

from __future__ import annotations

from typing import Any

from modelplane.libs.resources.importers.base import ForeignDocument, ForeignRef
from modelplane.libs.resources.importers.inference_service import IMPORTERS as ISVC_IMPORTERS
from modelplane.libs.resources.importers.namespaces import native_name, translate_in_namespace
from modelplane.libs.resources.importers.trained_model import IMPORTERS as TM_IMPORTERS
from modelplane.libs.resources.types import NAME_MAX_LENGTH, NAME_PATTERN, Model, Server

ISVC = ISVC_IMPORTERS[0]
TM = TM_IMPORTERS[0]


def isvc(name: str, namespace: str, **predictor: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "predictor": predictor
            or {"sklearn": {"storageUri": "gs://kfserving-examples/models/sklearn/1.0/model"}}
        },
    }


def doc(manifest: dict[str, Any]) -> ForeignDocument:
    meta = manifest["metadata"]
    return ForeignDocument(
        ForeignRef(manifest["kind"], meta["name"], meta["namespace"]), manifest["apiVersion"], manifest
    )


def test_native_names_carry_the_namespace_outside_default() -> None:
    assert native_name("iris", "default") == "iris"
    assert native_name("iris", "") == "iris"
    assert native_name("iris", "team-a") == "team-a--iris"
    long = native_name("m" * 60, "n" * 40)
    assert len(long) <= NAME_MAX_LENGTH
    assert NAME_PATTERN.match(long)
    assert long != native_name("m" * 60, "n" * 41)


def test_the_same_name_in_two_namespaces_derives_different_models() -> None:
    a, b = isvc("sklearn-iris", "default"), isvc("sklearn-iris", "team-a")
    docs = [doc(a), doc(b)]
    (in_default,) = translate_in_namespace(ISVC, docs[0].ref, a["apiVersion"], a, docs).resources
    (in_team,) = translate_in_namespace(ISVC, docs[1].ref, b["apiVersion"], b, docs).resources
    assert in_default.meta.name == "sklearn-iris"
    assert in_team.meta.name == "team-a--sklearn-iris"


def test_a_trained_model_finds_its_parent_in_its_own_namespace_only() -> None:
    parent = isvc(
        "mms",
        "team-a",
        model={"modelFormat": {"name": "sklearn"}, "resources": {"limits": {"memory": "1Gi"}}},
    )
    tm = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "TrainedModel",
        "metadata": {"name": "iris", "namespace": "team-a"},
        "spec": {
            "inferenceService": "mms",
            "model": {"storageUri": "gs://x/iris", "framework": "sklearn", "memory": "100Mi"},
        },
    }
    docs = [doc(parent), doc(tm)]
    (server,) = translate_in_namespace(ISVC, docs[0].ref, docs[0].api_version, parent, docs).resources
    assert isinstance(server, Server)
    assert server.meta.name == "team-a--mms"
    (model,) = translate_in_namespace(TM, docs[1].ref, docs[1].api_version, tm, docs).resources
    assert isinstance(model, Model)
    assert (model.meta.name, model.spec.server) == ("team-a--iris", "team-a--mms")
    elsewhere = {**tm, "metadata": {"name": "iris", "namespace": "team-b"}}
    orphan = translate_in_namespace(
        TM, doc(elsewhere).ref, docs[1].api_version, elsewhere, [*docs, doc(elsewhere)]
    )
    assert orphan.resources == ()
    assert orphan.problems[0].field == "spec.inferenceService"


def test_a_namespaced_runtime_is_selected_only_in_its_namespace() -> None:
    runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": "my-mlserver", "namespace": "team-a"},
        "spec": {
            "supportedModelFormats": [{"name": "sklearn", "version": "1", "autoSelect": True, "priority": 9}],
            "protocolVersions": ["v2"],
            "containers": [{"name": "kserve-container", "image": "docker.io/seldonio/mlserver:1.7.1"}],
        },
    }
    model = {"modelFormat": {"name": "sklearn"}, "protocolVersion": "v2", "storageUri": "gs://x/iris"}
    a, b = isvc("iris", "team-a", model=model), isvc("iris", "team-b", model=model)
    docs = [doc(runtime), doc(a), doc(b)]
    in_a = translate_in_namespace(ISVC, docs[1].ref, a["apiVersion"], a, docs)
    in_b = translate_in_namespace(ISVC, docs[2].ref, b["apiVersion"], b, docs)
    assert any(isinstance(r, Server) for r in in_a.resources)  # its own runtime's server
    assert not any(isinstance(r, Server) for r in in_b.resources)  # the built-in pool
    explicit = isvc("pinned", "team-a", model={**model, "runtime": "my-mlserver"})
    pinned = translate_in_namespace(
        ISVC, doc(explicit).ref, explicit["apiVersion"], explicit, [*docs, doc(explicit)]
    )
    assert any(isinstance(r, Server) for r in pinned.resources)
    assert not pinned.problems
