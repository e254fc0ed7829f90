"""`modelplane apply/get/list/wait/delete/convert` with KServe and Seldon v1 manifests, against the
api App on free ports (real NATS, real gRPC); `convert` needs no api."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from modelplane.cli.main import cli

from .harness import Cli

ISVC = """\
apiVersion: "serving.kserve.io/v1beta1"
kind: "InferenceService"
metadata:
  name: "sklearn-iris"
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: "./iris"
"""

SDEP = """\
apiVersion: machinelearning.seldon.io/v1alpha2
kind: SeldonDeployment
metadata:
  name: sklearn
  namespace: seldon
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

BAD_SPLIT = """\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: split
spec:
  predictors:
  - {name: a, traffic: 80, graph: {name: m, implementation: SKLEARN_SERVER, modelUri: gs://b/a}}
  - {name: b, traffic: 30, graph: {name: m, implementation: SKLEARN_SERVER, modelUri: gs://b/b}}
"""


async def test_apply_get_list_and_delete_foreign_kinds(run_cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "iris").mkdir()
    manifest = tmp_path / "both.yaml"
    manifest.write_text(ISVC + "---\n" + SDEP)
    applied = await run_cli("apply", "-f", str(manifest))
    assert applied.exit_code == 0, applied.output
    assert applied.output.splitlines() == [
        "inferenceservice/sklearn-iris created",
        "seldondeployment/sklearn created",
    ]

    shown = await run_cli("get", "isvc", "sklearn-iris", "-o", "json")
    assert shown.exit_code == 0, shown.output
    isvc = json.loads(shown.output)
    assert list(isvc)[:4] == ["apiVersion", "kind", "metadata", "spec"]
    # As applied, but for the relative path the CLI resolved against the manifest's folder.
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == f"file://{tmp_path / 'iris'}"
    assert isvc["status"]["clusterServingRuntimeName"] == "kserve-sklearnserver"
    summary = await run_cli("get", "sdep", "sklearn", "-n", "seldon")
    assert summary.exit_code == 0, summary.output
    assert summary.output.splitlines()[0] == "seldondeployment/sklearn (seldon): Creating"
    assert "owns model/seldon--sklearn" in summary.output
    missing = await run_cli("get", "sdep", "sklearn")  # namespace default
    assert missing.exit_code == 1
    assert "not found in namespace 'default'" in missing.output

    listed = await run_cli("list", "-A")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert any(line.startswith("seldondeployment/sklearn") and "seldon" in line for line in lines)
    # The Model it derived lives in its namespace (the services know it as seldon--sklearn).
    assert any(
        line.split()[:2] == ["model/sklearn", "seldon"] and "owned by SeldonDeployment/seldon/sklearn" in line
        for line in lines
    )
    only_default = await run_cli("list", "sdep")
    assert "seldondeployment/sklearn" not in only_default.output

    owned = await run_cli("delete", "model", "sklearn-iris")
    assert owned.exit_code == 2
    assert "owned by InferenceService/default/sklearn-iris" in owned.output
    deleted = await run_cli("delete", "isvc", "sklearn-iris")
    assert (deleted.exit_code, deleted.output.strip()) == (0, "isvc/sklearn-iris deleted")
    assert "sklearn-iris" not in (await run_cli("list", "model")).output

    timed_out = await run_cli("wait", "sdep", "sklearn", "-n", "seldon", "--timeout", "0")
    assert timed_out.exit_code == 1
    assert "timed out after 0s waiting for seldondeployment/sklearn: Creating" in timed_out.output


async def test_an_invalid_document_fails_the_whole_apply_naming_file_and_field(
    run_cli: Cli, tmp_path: Path
) -> None:
    manifest = tmp_path / "two.yaml"
    manifest.write_text(SDEP + "---\n" + BAD_SPLIT)
    done = await run_cli("apply", "-f", str(manifest))
    assert done.exit_code == 2
    assert f"{manifest} (document 2): spec.predictors[0].traffic" in done.output
    listed = await run_cli("list", "sdep", "-A")
    assert "No resources found." in listed.output


def test_convert_prints_the_native_resources_and_why(tmp_path: Path) -> None:
    manifest = tmp_path / "isvc.yaml"
    manifest.write_text(ISVC)
    done = CliRunner().invoke(cli, ["convert", "-f", str(manifest)])
    assert done.exit_code == 0, done.output
    assert done.output.startswith("# InferenceService/sklearn-iris becomes:\n#   ")
    assert "kserve-sklearnserver" in done.output
    (model,) = [d for d in yaml.safe_load_all(done.output) if d]
    assert model["kind"] == "Model"
    assert model["metadata"]["name"] == "sklearn-iris"
    assert model["spec"]["storageUri"] == f"file://{tmp_path / 'iris'}"
    assert model["spec"]["requirements"] == ["sklearn"]

    as_json = CliRunner().invoke(cli, ["convert", "-f", str(manifest), "-o", "json"])
    (conversion,) = json.loads(as_json.output)
    assert conversion["source"] == "InferenceService/sklearn-iris"
    assert conversion["resources"][0]["kind"] == "Model"

    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_SPLIT)
    refused = CliRunner().invoke(cli, ["convert", "-f", str(bad)])
    assert refused.exit_code == 2
    assert "spec.predictors[0].traffic" in refused.output


def test_status_streams_name_statuses_as_written_and_can_still_be_cancelled() -> None:
    """ApiClient's watch/follow streams show a namespace's names as written, and cancel() still
    ends the gRPC stream underneath (callers stop a watch that way)."""
    from modelplane.cli.client import _Shown
    from modelplane.proto import control_pb2, state_pb2

    class Stream:
        cancelled = False

        def __init__(self) -> None:
            self._events = iter(
                [control_pb2.WatchEvent(type="PUT", status=state_pb2.ResourceStatus(name="team-a--iris"))]
            )

        def __next__(self) -> control_pb2.WatchEvent:
            return next(self._events)

        def __iter__(self) -> Stream:
            return self

        def cancel(self) -> None:
            self.cancelled = True

    stream = Stream()
    shown = _Shown(stream, lambda name: name.removeprefix("team-a--"))
    assert [event.status.name for event in shown] == ["iris"]
    shown.cancel()
    assert stream.cancelled
