"""model-settings.json as the agent writes it for MLServer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelplane.libs.errors import PermanentError
from modelplane.libs.resources.types import ModelSpec
from modelplane.services.placement.runtimes.layouts import MLServerLayout
from modelplane.services.placement.runtimes.mlserver_implementations import installed_modules


def _written(folder: Path) -> dict[str, object]:
    return json.loads((folder / "model-settings.json").read_text())  # type: ignore[no-any-return]


def test_artifact_settings_win_and_get_our_name(tmp_path: Path) -> None:
    """The artifact's settings are kept; name is replaced, version dropped, parameters merged."""
    (tmp_path / "model-settings.json").write_text(
        json.dumps(
            {"name": "iris", "implementation": "x.Y", "parameters": {"uri": "./m.joblib", "version": "v1"}}
        )
    )
    MLServerLayout().prepare(tmp_path, "iris_2", ModelSpec(storage_uri="/x", parameters={"a": "b"}), "")
    assert _written(tmp_path) == {
        "name": "iris_2",
        "implementation": "x.Y",
        "parameters": {"uri": "./m.joblib", "a": "b"},
    }


@pytest.mark.parametrize(
    ("requirement", "implementation"),
    [
        ("sklearn", "mlserver_sklearn.SKLearnModel"),
        ("xgboost", "mlserver_xgboost.XGBoostModel"),
        ("lightgbm", "mlserver_lightgbm.LightGBMModel"),
        ("mlflow", "mlserver_mlflow.MLflowRuntime"),
        ("huggingface", "mlserver_huggingface.HuggingFaceRuntime"),
    ],
)
def test_implementation_from_requirements(tmp_path: Path, requirement: str, implementation: str) -> None:
    """Without settings in the artifact, a requirement picks the MLServer runtime; a folder uri is '.'."""
    spec = ModelSpec(storage_uri="/x", requirements=("python", requirement))
    MLServerLayout().prepare(tmp_path, "m_1", spec, "")
    assert _written(tmp_path) == {"implementation": implementation, "parameters": {"uri": "."}, "name": "m_1"}


def test_no_settings_and_no_requirement_fails(tmp_path: Path) -> None:
    """With neither settings nor a known requirement the load fails with advice."""
    with pytest.raises(PermanentError, match="cannot tell which runtime implementation to use"):
        MLServerLayout().prepare(tmp_path, "m_1", ModelSpec(storage_uri="/x"), "")


def test_invalid_artifact_settings_fail(tmp_path: Path) -> None:
    """An artifact model-settings.json that is not JSON fails clearly."""
    (tmp_path / "model-settings.json").write_text("{nope")
    with pytest.raises(PermanentError, match="not valid JSON"):
        MLServerLayout().prepare(tmp_path, "m_1", ModelSpec(storage_uri="/x", requirements=("sklearn",)), "")


def test_runtime_missing_from_the_server_interpreter_fails(tmp_path: Path) -> None:
    """A requirement picking a runtime the server's interpreter lacks fails, naming the extra."""
    layout = MLServerLayout(installed=frozenset({"mlserver_sklearn"}))
    spec = ModelSpec(storage_uri="/x", requirements=("mlflow",))
    with pytest.raises(PermanentError) as raised:
        layout.prepare(tmp_path, "m_1", spec, "")
    assert str(raised.value) == (
        "the mlflow runtime (mlserver_mlflow.MLflowRuntime) is not installed: "
        "pip install 'modelplane[mlflow]'"
    )
    assert not (tmp_path / "model-settings.json").exists()


def test_artifact_settings_naming_a_missing_runtime_fail(tmp_path: Path) -> None:
    """The artifact's own settings are checked too; a bundled runtime's advice names its package."""
    (tmp_path / "model-settings.json").write_text(
        json.dumps({"implementation": "mlserver_xgboost.XGBoostModel"})
    )
    with pytest.raises(PermanentError, match=r"pip install mlserver-xgboost==1\.7\.1$"):
        MLServerLayout(installed=frozenset()).prepare(tmp_path, "m_1", ModelSpec(storage_uri="/x"), "")


def test_unknown_implementations_and_unknown_interpreters_are_not_checked(tmp_path: Path) -> None:
    """Custom model code (which may ship in the artifact) and a server whose interpreter the agent
    cannot see are left to MLServer."""
    (tmp_path / "model-settings.json").write_text(json.dumps({"implementation": "my_model.Model"}))
    MLServerLayout(installed=frozenset()).prepare(tmp_path, "m_1", ModelSpec(storage_uri="/x"), "")
    assert _written(tmp_path)["implementation"] == "my_model.Model"
    spec = ModelSpec(storage_uri="/x", requirements=("huggingface",))
    (tmp_path / "m").mkdir()
    MLServerLayout(installed=None).prepare(tmp_path / "m", "m_1", spec, "")
    assert _written(tmp_path / "m")["implementation"] == "mlserver_huggingface.HuggingFaceRuntime"


def test_bundled_runtimes_are_importable_here() -> None:
    """modelplane's own runtime dependencies (sklearn, xgboost, lightgbm) are seen as installed."""
    assert {"mlserver_sklearn", "mlserver_xgboost", "mlserver_lightgbm"} <= installed_modules()


def test_huggingface_advice_says_it_cannot_share_our_environment(tmp_path: Path) -> None:
    """The huggingface runtime has no extra (it cannot import beside our huggingface_hub): the
    reason says so instead of advising an install that would not work."""
    spec = ModelSpec(storage_uri="/x", requirements=("huggingface",))
    with pytest.raises(PermanentError) as raised:
        MLServerLayout(installed=frozenset()).prepare(tmp_path, "m_1", spec, "")
    assert "modelplane[" not in str(raised.value)
    assert "cannot share modelplane's environment" in str(raised.value)


def test_extra_parameters_land_in_mlserver_extra(tmp_path: Path) -> None:
    """A parameter "extra.<key>" is MLServer's parameters.extra[<key>] (e.g. the sklearn runtime's
    predict_fn), merged with the artifact's own extra; others stay top-level."""
    (tmp_path / "model-settings.json").write_text(
        json.dumps({"implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"extra": {"keep": 1}}})
    )
    spec = ModelSpec(
        storage_uri="/x",
        requirements=("sklearn",),
        parameters={"extra.predict_fn": "predict_proba", "a": "b"},
    )
    MLServerLayout().prepare(tmp_path, "iris_1", spec, "")
    parameters = json.loads((tmp_path / "model-settings.json").read_text())["parameters"]
    assert parameters["extra"] == {"keep": 1, "predict_fn": "predict_proba"}
    assert parameters["a"] == "b"
