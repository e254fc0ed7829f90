"""The README quickstart works exactly as written (its commands are read from README.md)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from tests.e2e.stack import REPO, UpProcess


def quickstart_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- quickstart:begin -->\s*```sh\n(.*?)```\s*<!-- quickstart:end -->", text, re.S)
    assert block, "README.md lost its quickstart block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_quickstart_commands_run_as_written(stack: UpProcess, tmp_path: Path) -> None:
    """Each quickstart command exits 0 in a copy of the repo's examples, and the last one predicts."""
    work = tmp_path / "checkout"
    shutil.copytree(REPO / "examples", work / "examples", ignore=shutil.ignore_patterns("model"))
    (work / ".venv").symlink_to(REPO / ".venv")
    out = ""
    for command in quickstart_commands():
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
    response = json.loads(out)
    assert response["outputs"][0]["data"] == [0, 2]
