"""Foreign kinds through the api's handler: stored as written, applied as owned native resources,
re-derived on change, deleted with their owner, all or nothing (real NATS, real importers)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs.errors import InvalidError, NotFoundError, PermissionDeniedError
from modelplane.libs.resources.types import Experiment, Model
from modelplane.services.api.foreign import ForeignEntry
from modelplane.services.api.handler import ControlHandler
from tests.helpers.auth import ADMIN, DEPLOYER, VIEWER

# Seldon's own example (seeds/001): prepackaged SKLEARN_SERVER, v1alpha2 with spec.name.
SEED_SDEP: dict[str, Any] = {
    "apiVersion": "machinelearning.seldon.io/v1alpha2",
    "kind": "SeldonDeployment",
    "metadata": {"name": "sklearn"},
    "spec": {
        "name": "iris",
        "predictors": [
            {
                "graph": {
                    "children": [],
                    "implementation": "SKLEARN_SERVER",
                    "modelUri": "gs://seldon-models/sklearn/iris",
                    "name": "classifier",
                },
                "name": "default",
                "replicas": 1,
            }
        ],
    },
}


def split_sdep(main: int = 80) -> dict[str, Any]:
    """Two predictors taking main/100-main of the traffic, plus a shadow."""

    def predictor(name: str, uri: str, **extra: Any) -> dict[str, Any]:
        graph = {"name": "classifier", "implementation": "SKLEARN_SERVER", "modelUri": uri}
        return {"name": name, "graph": graph, "replicas": 1, **extra}

    return {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": "abtest"},
        "spec": {
            "predictors": [
                predictor("main", "gs://seldon-models/sklearn/iris", traffic=main),
                predictor("canary", "gs://seldon-models/sklearn/iris2", traffic=100 - main),
                predictor("shadow", "gs://seldon-models/sklearn/iris3", shadow=True),
            ]
        },
    }


@pytest.fixture
async def handler(js: JetStreamContext, nc: NATS) -> AsyncIterator[ControlHandler]:
    handler = await ControlHandler.open(js, nc)
    yield handler
    await handler.close()


async def test_a_seldon_deployment_is_stored_as_written_and_owns_its_model(handler: ControlHandler) -> None:
    ((entry, outcome),) = await handler.apply_manifests(ADMIN, [SEED_SDEP])
    assert outcome == "created"
    assert isinstance(entry, ForeignEntry)
    assert entry.owned == (("Model", "sklearn"),)
    model = await handler.get(ADMIN, "Model", "sklearn")
    assert isinstance(model, Model)
    assert model.meta.owner == "SeldonDeployment/default/sklearn"
    assert model.spec.storage_uri == "gs://seldon-models/sklearn/iris"
    assert model.spec.requirements == ("sklearn",)

    view = await handler.get_foreign(ADMIN, "SeldonDeployment", "sklearn")
    shown = view.manifest()
    assert shown["spec"] == SEED_SDEP["spec"]
    assert shown["apiVersion"] == "machinelearning.seldon.io/v1alpha2"
    assert shown["metadata"]["generation"] == 1
    assert shown["status"]["state"] == "Creating"

    ((_, again),) = await handler.apply_manifests(ADMIN, [SEED_SDEP])
    assert again == "unchanged"


async def test_a_change_re_derives_and_removes_what_is_no_longer_produced(handler: ControlHandler) -> None:
    await handler.apply_manifests(ADMIN, [split_sdep(80)])
    experiment = await handler.get(ADMIN, "Experiment", "abtest")
    assert isinstance(experiment, Experiment)
    assert {(c.name, c.weight) for c in experiment.spec.candidates} == {("abtest", 80), ("abtest-canary", 20)}
    assert experiment.spec.mirror is not None
    assert experiment.spec.mirror.percent == 100

    single = split_sdep(100)
    single["spec"]["predictors"] = single["spec"]["predictors"][:1]
    ((entry, outcome),) = await handler.apply_manifests(ADMIN, [single])
    assert outcome == "configured"
    assert isinstance(entry, ForeignEntry)
    assert entry.generation == 2
    for kind, name in (("Experiment", "abtest"), ("Model", "abtest-canary"), ("Model", "abtest-shadow")):
        with pytest.raises(NotFoundError):
            await handler.get(ADMIN, kind, name)  # type: ignore[arg-type]
    assert (await handler.get(ADMIN, "Model", "abtest")).meta.owner == "SeldonDeployment/default/abtest"


async def test_deleting_the_owner_deletes_what_it_owns(handler: ControlHandler) -> None:
    await handler.apply_manifests(ADMIN, [split_sdep()])
    assert await handler.delete_foreign(ADMIN, "SeldonDeployment", "abtest") == "deleted"
    assert await handler.list(ADMIN, "Model") == []
    assert await handler.list(ADMIN, "Experiment") == []
    with pytest.raises(NotFoundError):
        await handler.get_foreign(ADMIN, "SeldonDeployment", "abtest")


async def test_owned_resources_cannot_be_changed_or_deleted_on_their_own(handler: ControlHandler) -> None:
    await handler.apply_manifests(ADMIN, [SEED_SDEP])
    native = {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "sklearn"},
        "spec": {"storageUri": "gs://elsewhere/model", "requirements": ["sklearn"]},
    }
    with pytest.raises(InvalidError) as caught:
        await handler.apply_manifests(ADMIN, [native])
    assert caught.value.field == "metadata.name"
    assert "SeldonDeployment/default/sklearn" in caught.value.message
    with pytest.raises(InvalidError):
        await handler.delete(ADMIN, "Model", "sklearn")
    model = await handler.get(ADMIN, "Model", "sklearn")
    assert isinstance(model, Model)
    assert model.spec.storage_uri == "gs://seldon-models/sklearn/iris"


async def test_a_foreign_resource_does_not_take_over_a_native_one(handler: ControlHandler) -> None:
    native = {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "sklearn"},
        "spec": {"storageUri": "gs://mine/model", "requirements": ["sklearn"]},
    }
    await handler.apply_manifests(ADMIN, [native])
    with pytest.raises(InvalidError) as caught:
        await handler.apply_manifests(ADMIN, [SEED_SDEP])
    assert "applied directly" in caught.value.message
    with pytest.raises(NotFoundError):
        await handler.get_foreign(ADMIN, "SeldonDeployment", "sklearn")


async def test_apply_is_all_or_nothing_naming_the_document(handler: ControlHandler) -> None:
    bad = split_sdep()
    bad["spec"]["predictors"][1]["traffic"] = 30  # 80 + 30 != 100
    native = {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "other"},
        "spec": {"storageUri": "gs://mine/model", "requirements": ["sklearn"]},
    }
    with pytest.raises(InvalidError) as caught:
        await handler.apply_manifests(ADMIN, [native, SEED_SDEP, bad])
    assert caught.value.field is not None
    assert caught.value.field.startswith("documents[2].spec.predictors")
    assert "traffic" in caught.value.field
    assert await handler.list(ADMIN, "Model") == []
    assert await handler.list_foreign(ADMIN, "SeldonDeployment") == []


async def test_deployers_apply_deployments_viewers_do_not(handler: ControlHandler) -> None:
    deployer, viewer = DEPLOYER, VIEWER
    ((_, outcome),) = await handler.apply_manifests(deployer, [copy.deepcopy(SEED_SDEP)])
    assert outcome == "created"
    with pytest.raises(PermissionDeniedError):
        await handler.apply_manifests(viewer, [split_sdep()])
    with pytest.raises(PermissionDeniedError):
        await handler.delete_foreign(viewer, "SeldonDeployment", "sklearn")
    with_env = copy.deepcopy(split_sdep())
    with_env["spec"]["predictors"][0]["componentSpecs"] = [
        {"spec": {"containers": [{"name": "classifier", "env": [{"name": "X", "value": "1"}]}]}}
    ]
    with pytest.raises(PermissionDeniedError) as caught:
        await handler.apply_manifests(deployer, [with_env])
    assert caught.value.field == "spec.predictors[0].componentSpecs[0].spec.containers[0].env"


def iris_isvc(
    namespace: str | None = None, uri: str = "gs://kfserving-examples/models/sklearn/1.0/model"
) -> dict[str, Any]:
    """KServe's own first example (the sklearn iris InferenceService with modelFormat)."""
    metadata: dict[str, Any] = {"name": "sklearn-iris"}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}}},
    }


async def test_the_same_name_in_two_namespaces_neither_disturbs_the_other(handler: ControlHandler) -> None:
    await handler.apply_manifests(ADMIN, [iris_isvc(), iris_isvc("team-a", "gs://team-a/iris")])
    mine = await handler.get(ADMIN, "Model", "sklearn-iris")
    theirs = await handler.get(ADMIN, "Model", "team-a--sklearn-iris")
    assert isinstance(mine, Model)
    assert isinstance(theirs, Model)
    assert mine.spec.storage_uri == "gs://kfserving-examples/models/sklearn/1.0/model"
    assert theirs.spec.storage_uri == "gs://team-a/iris"
    assert theirs.meta.owner == "InferenceService/team-a/sklearn-iris"
    shown = (await handler.get_foreign(ADMIN, "InferenceService", "sklearn-iris", "team-a")).manifest()
    assert shown["metadata"]["namespace"] == "team-a"
    assert shown["metadata"]["name"] == "sklearn-iris"
    assert len(await handler.list_foreign(ADMIN, "InferenceService")) == 2

    await handler.delete_foreign(ADMIN, "InferenceService", "sklearn-iris", "team-a")
    with pytest.raises(NotFoundError):
        await handler.get(ADMIN, "Model", "team-a--sklearn-iris")
    assert (await handler.get(ADMIN, "Model", "sklearn-iris")).meta.generation == 1
    with pytest.raises(NotFoundError):
        await handler.get_foreign(ADMIN, "InferenceService", "sklearn-iris", "team-a")
    assert (await handler.get_foreign(ADMIN, "InferenceService", "sklearn-iris")).entry.generation == 1


async def test_a_trained_model_follows_its_parent(handler: ControlHandler) -> None:
    """Applying the parent after the TrainedModel re-derives it; deleting the parent removes
    its Model again (KServe's multi-model path)."""
    parent = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "mms"},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "sklearn"}, "resources": {"limits": {"memory": "1Gi"}}}
            }
        },
    }
    tm = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "TrainedModel",
        "metadata": {"name": "iris"},
        "spec": {
            "inferenceService": "mms",
            "model": {"storageUri": "gs://x/iris", "framework": "sklearn", "memory": "256Mi"},
        },
    }
    ((entry, _),) = await handler.apply_manifests(ADMIN, [tm])
    assert isinstance(entry, ForeignEntry)
    assert entry.owned == ()
    assert entry.problems[0].field == "spec.inferenceService"
    await handler.apply_manifests(ADMIN, [parent])
    model = await handler.get(ADMIN, "Model", "iris")
    assert isinstance(model, Model)
    assert model.spec.server == "mms"
    await handler.delete_foreign(ADMIN, "InferenceService", "mms")
    with pytest.raises(NotFoundError):
        await handler.get(ADMIN, "Model", "iris")
    assert (await handler.get_foreign(ADMIN, "TrainedModel", "iris")).entry.problems


async def test_a_dependent_that_no_longer_admits_keeps_what_it_had(handler: ControlHandler) -> None:
    """A TrainedModel re-derived because its parent arrived would take over a Model applied
    directly meanwhile: the parent's apply succeeds, the native Model is left alone."""
    tm = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "TrainedModel",
        "metadata": {"name": "iris"},
        "spec": {
            "inferenceService": "mms",
            "model": {"storageUri": "gs://x/iris", "framework": "sklearn", "memory": "1Mi"},
        },
    }
    await handler.apply_manifests(ADMIN, [tm])
    native = {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "iris"},
        "spec": {"storageUri": "gs://mine/iris", "requirements": ["sklearn"]},
    }
    await handler.apply_manifests(ADMIN, [native])
    parent = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "mms"},
        "spec": {
            "predictor": {
                "model": {"modelFormat": {"name": "sklearn"}, "resources": {"limits": {"memory": "1Gi"}}}
            }
        },
    }
    ((_, outcome),) = await handler.apply_manifests(ADMIN, [parent])
    assert outcome == "created"
    model = await handler.get(ADMIN, "Model", "iris")
    assert isinstance(model, Model)
    assert model.meta.owner == ""
    assert model.spec.storage_uri == "gs://mine/iris"
    assert (await handler.get_foreign(ADMIN, "TrainedModel", "iris")).entry.owned == ()


async def test_names_and_namespaces_that_cannot_be_keys_are_refused(handler: ControlHandler) -> None:
    for metadata, field in (
        ({"name": "a b"}, "metadata.name"),
        ({"name": "x/../y"}, "metadata.name"),
        ({"name": "ok", "namespace": "Team_A"}, "metadata.namespace"),
        ({"name": "ok", "namespace": 7}, "metadata.namespace"),
    ):
        bad = {**iris_isvc(), "metadata": metadata}
        with pytest.raises(InvalidError) as caught:
            await handler.apply_manifests(ADMIN, [bad])
        assert caught.value.field == field
    assert await handler.list_foreign(ADMIN, "InferenceService") == []
