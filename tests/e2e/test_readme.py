"""The README examples work exactly as written (their commands are read from README.md)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from tests.e2e.stack import REPO, UpProcess


def readme_commands(marker: str) -> list[str]:
    """The commands of the README block between ``<!-- marker:begin -->`` and its end."""
    text = (REPO / "README.md").read_text()
    block = re.search(rf"<!-- {marker}:begin -->\s*```sh\n(.*?)```\s*<!-- {marker}:end -->", text, re.S)
    assert block, f"README.md lost its {marker} block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def run_as_written(commands: list[str], stack: UpProcess, work: Path) -> str:
    """Run each command in ``work`` against the stack; each must exit 0. The last one's output."""
    out = ""
    for command in commands:
        done = subprocess.run(
            command,
            shell=True,
            cwd=work,
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, f"{command!r} failed: {done.stderr}\n{stack.log_tail()}"
        out = done.stdout
    return out


def test_readme_quickstart_commands_run_as_written(stack: UpProcess, tmp_path: Path) -> None:
    """Each quickstart command exits 0 in a copy of the repo's examples, and the last one predicts."""
    work = tmp_path / "checkout"
    shutil.copytree(REPO / "examples", work / "examples", ignore=shutil.ignore_patterns("model"))
    (work / ".venv").symlink_to(REPO / ".venv")
    out = run_as_written(readme_commands("quickstart"), stack, work)
    response = json.loads(out)
    assert response["outputs"][0]["data"] == [0, 2]


def test_readme_pipeline_commands_run_as_written(stack: UpProcess, tmp_path: Path) -> None:
    """The README's pipeline example loads, gets ready and answers from the negate branch."""
    work = tmp_path / "checkout"
    shutil.copytree(REPO / "examples", work / "examples")
    (work / ".venv").symlink_to(REPO / ".venv")
    response = json.loads(run_as_written(readme_commands("pipeline"), stack, work))
    assert response["outputs"][0]["data"] == [1.0, 3.0]


def test_readme_foreign_manifest_commands_run_as_written(stack: UpProcess, tmp_path: Path) -> None:
    """KServe's and Seldon v1's own examples apply unchanged, get Ready/Available, and answer
    their users' protocols (the last command: the Seldon protocol, predict_proba rows)."""
    work = tmp_path / "checkout"
    shutil.copytree(REPO / "examples", work / "examples", ignore=shutil.ignore_patterns("model"))
    (work / ".venv").symlink_to(REPO / ".venv")
    commands = readme_commands("foreign")
    out = run_as_written(commands, stack, work)
    answer = json.loads(out)
    assert answer["data"]["names"] == ["t:0", "t:1", "t:2"]
    (probabilities,) = answer["data"]["ndarray"]
    assert abs(sum(probabilities) - 1.0) < 1e-6
    assert probabilities.index(max(probabilities)) == 0  # the first iris row is a setosa
    v1 = json.loads(run_as_written([commands[-2]], stack, work))
    assert v1 == {"predictions": [1, 1]}
    shown = run_as_written([".venv/bin/modelplane get isvc sklearn-iris -o json"], stack, work)
    status = json.loads(shown)["status"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    assert status["clusterServingRuntimeName"] == "kserve-sklearnserver"
