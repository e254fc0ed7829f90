"""`modelplane experiment start/stop/status/list` against the real api App and NATS."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2, state_pb2

from .harness import Cli

# Seldon's experiment sample, as users have it.
SELDON_EXPERIMENT = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Experiment
metadata:
  name: experiment-sample
  namespace: seldon-mesh
spec:
  default: iris
  candidates:
  - name: iris
    weight: 50
  - name: iris2
    weight: 50
  mirror:
    name: iris3
    percent: 10
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


async def test_start_status_list_stop(run_cli: Cli, tmp_path: Path, js: JetStreamContext) -> None:
    """A Seldon Experiment starts, shows its members and readiness, lists, and stops."""
    started = await run_cli("experiment", "start", "-f", str(write(tmp_path, SELDON_EXPERIMENT)))
    assert started.exit_code == 0, started.output
    assert started.output.strip() == "experiment/experiment-sample created"
    # Its namespace's: the services know it (and its models) as seldon-mesh--<name>.
    bucket = await TypedBucket.open(js, subjects.KV_EXPERIMENTS, resources_pb2.Experiment)
    assert await bucket.try_get("seldon-mesh--experiment-sample") is not None
    elsewhere = await run_cli("experiment", "status", "experiment-sample")  # namespace default
    assert elsewhere.exit_code == 1

    shown = await run_cli("experiment", "status", "experiment-sample", "-n", "seldon-mesh")
    assert shown.exit_code == 0, shown.output
    assert "experiment/experiment-sample: ExperimentNotReady" in shown.output
    assert "candidates: iris (50), iris2 (50)" in shown.output
    assert "mirror: iris3 (10%)" in shown.output
    assert "candidate seldon-mesh--iris is not found" in shown.output

    statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    for name in ("seldon-mesh--iris", "seldon-mesh--iris2", "seldon-mesh--iris3"):
        await statuses.put(
            subjects.status_key("Model", name),
            state_pb2.ResourceStatus(kind="Model", name=name, state="ModelAvailable"),
        )
    as_json = await run_cli("experiment", "status", "experiment-sample", "-o", "json", "-n", "seldon-mesh")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["status"]["state"] == "ExperimentReady"
    assert data["spec"]["mirror"] == {"name": "iris3", "percent": 10}
    as_yaml = await run_cli("experiment", "status", "experiment-sample", "-o", "yaml", "-n", "seldon-mesh")
    assert yaml.safe_load(as_yaml.output)["spec"]["default"] == "iris"

    assert "experiment-sample" not in (await run_cli("experiment", "list")).output
    listed = await run_cli("experiment", "list", "-n", "seldon-mesh")
    assert listed.exit_code == 0, listed.output
    header, row = listed.output.strip().splitlines()
    assert header.split() == ["NAME", "STATE", "DEFAULT", "CANDIDATES", "MIRROR"]
    assert row.startswith("experiment-sample")
    assert "ExperimentReady" in row

    stopped = await run_cli("experiment", "stop", "experiment-sample", "-n", "seldon-mesh")
    assert stopped.exit_code == 0, stopped.output
    assert stopped.output.strip() == "experiment/experiment-sample deleted"
    assert await bucket.try_get("seldon-mesh--experiment-sample") is None
    gone = await run_cli("experiment", "status", "experiment-sample", "-n", "seldon-mesh")
    assert gone.exit_code == 1
    assert "not found" in gone.output


async def test_invalid_experiment_exits_2_naming_the_field(run_cli: Cli, tmp_path: Path) -> None:
    """A default that is no candidate, or a second baseline, is refused with one line naming the field."""
    bad = SELDON_EXPERIMENT.replace("default: iris", "default: nope")
    result = await run_cli("experiment", "start", "-f", str(write(tmp_path, bad)))
    assert result.exit_code == 2
    assert (
        "spec.default: must be one of the candidates (seldon-mesh--iris, seldon-mesh--iris2)" in result.output
    )
    assert "Traceback" not in result.output

    first = await run_cli("experiment", "start", "-f", str(write(tmp_path, SELDON_EXPERIMENT)))
    assert first.exit_code == 0, first.output
    second = SELDON_EXPERIMENT.replace("name: experiment-sample", "name: another")
    clash = await run_cli("experiment", "start", "-f", str(write(tmp_path, second)))
    assert clash.exit_code == 2
    assert (
        "spec.default: seldon-mesh--iris is already the baseline of experiment seldon-mesh--experiment-sample"
        in clash.output
    )


async def test_start_refuses_other_kinds(run_cli: Cli, tmp_path: Path) -> None:
    """`experiment start` takes only Experiment manifests (exit 2 naming the kind)."""
    model = (
        "apiVersion: modelplane.io/v1alpha1\nkind: Model\nmetadata: {name: iris}\nspec: {storageUri: /m}\n"
    )
    result = await run_cli("experiment", "start", "-f", str(write(tmp_path, model)))
    assert result.exit_code == 2
    assert "takes Experiment manifests, got 'Model'" in result.output


async def test_generic_apply_names_experiments(run_cli: Cli, tmp_path: Path) -> None:
    """`modelplane apply` accepts an Experiment and names it experiment/<name>."""
    result = await run_cli("apply", "-f", str(write(tmp_path, SELDON_EXPERIMENT)))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "experiment/experiment-sample created"
