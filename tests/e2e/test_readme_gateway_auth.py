"""The README's gateway-auth example works as written against `up` with
MODELPLANE_GATEWAY_AUTH=required: an inference token made with the CLI gets an answer, and the
same request without a token (or with a viewer's) is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from tests.e2e.stack import REPO, UpProcess
from tests.e2e.test_readme import readme_commands, run_as_written

UP_ENV = {"MODELPLANE_GATEWAY_AUTH": "required"}


def _infer_status(stack: UpProcess, work: Path, token: str | None) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.ports.gateway_http}/v2/models/iris/infer",
        data=(work / "examples" / "iris" / "request.json").read_bytes(),
        headers={
            "content-type": "application/json",
            **({"authorization": f"Bearer {token}"} if token else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_readme_gateway_auth_commands_run_as_written(stack: UpProcess, tmp_path: Path) -> None:
    """Quickstart, then the gateway-auth block: the inference token is answered; none is 401."""
    work = tmp_path / "checkout"
    shutil.copytree(REPO / "examples", work / "examples", ignore=shutil.ignore_patterns("model"))
    (work / ".venv").symlink_to(REPO / ".venv")
    run_as_written(readme_commands("quickstart"), stack, work)
    response = json.loads(run_as_written(readme_commands("gateway-auth"), stack, work))
    assert response["outputs"][0]["data"] == [0, 2]

    token = (work / "my-app.token").read_text().strip()
    assert token.startswith("mpt_")
    assert _infer_status(stack, work, token) == 200
    assert _infer_status(stack, work, None) == 401
    viewer = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "modelplane"),
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "looker",
        ],
        cwd=work,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert _infer_status(stack, work, viewer) == 403
