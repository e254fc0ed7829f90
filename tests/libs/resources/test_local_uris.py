"""Relative model paths in foreign manifests are made absolute against the manifest's folder."""

from __future__ import annotations

from modelplane.libs.resources.local_uris import resolve_relative_uris


def test_every_storage_and_model_uri_of_a_foreign_manifest() -> None:
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "spec": {"predictor": {"model": {"storageUri": "./iris"}}},
    }
    assert (
        resolve_relative_uris(isvc, "/srv/m")["spec"]["predictor"]["model"]["storageUri"]
        == "file:///srv/m/iris"
    )
    sdep = {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "spec": {"predictors": [{"graph": {"modelUri": "../a", "children": [{"modelUri": "b"}]}}]},
    }
    graph = resolve_relative_uris(sdep, "/srv/m")["spec"]["predictors"][0]["graph"]
    assert graph["modelUri"] == "file:///srv/a"
    assert graph["children"][0]["modelUri"] == "file:///srv/m/b"


def test_remote_absolute_and_rclone_uris_are_left_alone() -> None:
    for uri in ("gs://bucket/x", "/abs/x", "file:///abs/x", "mys3:sklearn/iris", "pvc://claim/x", ""):
        doc = {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "TrainedModel",
            "spec": {"model": {"storageUri": uri}},
        }
        assert resolve_relative_uris(doc, "/srv/m")["spec"]["model"]["storageUri"] == uri
    native = {"apiVersion": "modelplane.io/v1alpha1", "kind": "Model", "spec": {"storageUri": "./x"}}
    assert resolve_relative_uris(native, "/srv/m") is native  # resolve_relative_storage's job
