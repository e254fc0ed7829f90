"""`model infer` / `model metadata` over real V2 REST: a real MLServer stands where the gateway would.

The gateway speaks the same Open Inference Protocol v2 REST as MLServer, so pointing --gateway at
MLServer checks the CLI's request, response and error handling without depending on the gateway.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelplane.libs.embedded_nats import free_port
from tests.helpers.iris import IrisModel, build_iris_model
from tests.helpers.processes import stop_process_group

from .harness import Cli

START_TIMEOUT = 60.0


def _wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _post(url: str) -> bool:
    req = urllib.request.Request(url, data=b"{}", method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return bool(resp.status == 200)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, IrisModel]]:
    """A real MLServer with the iris model loaded, on free ports, stopped by its process group."""
    root = tmp_path_factory.mktemp("mlserver")
    iris = build_iris_model(root / "iris")
    http_port = free_port()
    settings = {
        "http_port": http_port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "load_models_at_startup": False,
        "parallel_workers": 0,
        "debug": False,
    }
    (root / "settings.json").write_text(json.dumps(settings))
    mlserver_bin = str(Path(sys.executable).parent / "mlserver")
    log = (root / "mlserver.log").open("wb")
    proc = subprocess.Popen(
        [mlserver_bin, "start", str(root)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        _wait_until(lambda: _ready(f"{base}/v2/health/ready"), START_TIMEOUT, "MLServer to be ready")
        assert _post(f"{base}/v2/repository/models/iris/load")
        yield base, iris
    finally:
        stop_process_group(proc, timeout=20)
        log.close()


async def test_infer_prints_the_v2_response(run_cli: Cli, mlserver: tuple[str, IrisModel]) -> None:
    """`model infer NAME DATA` posts the V2 request and prints the JSON response."""
    base, iris = mlserver
    result = await run_cli(
        "model", "infer", "iris", json.dumps(iris.v2_request(3)), MODELPLANE_GATEWAY_URL=base
    )
    assert result.exit_code == 0, result.output
    response = json.loads(result.stdout)
    assert response["model_name"] == "iris"
    assert response["outputs"][0]["data"] == iris.expected[:3].tolist()


async def test_infer_from_file_and_metadata(
    run_cli: Cli, mlserver: tuple[str, IrisModel], tmp_path: Path
) -> None:
    """-f FILE carries the request; `model metadata` prints the model's V2 metadata."""
    base, iris = mlserver
    request = tmp_path / "request.json"
    request.write_text(json.dumps(iris.v2_request(1)))
    result = await run_cli("model", "infer", "iris", "-f", str(request), "--gateway", base)
    assert json.loads(result.stdout)["outputs"][0]["data"] == iris.expected[:1].tolist()
    meta = await run_cli("model", "metadata", "iris", "--gateway", base)
    assert json.loads(meta.stdout)["name"] == "iris"


async def test_infer_errors_are_one_line(run_cli: Cli, mlserver: tuple[str, IrisModel]) -> None:
    """A gateway error exits 1 with its message; bad JSON data exits 2; no gateway exits 1."""
    base, _ = mlserver
    missing = await run_cli("model", "infer", "nope", '{"inputs": []}', "--gateway", base)
    assert missing.exit_code == 1
    assert missing.stderr.startswith("Error: gateway answered 404:")
    assert len(missing.stderr.splitlines()) == 1
    bad = await run_cli("model", "infer", "iris", "{not json", "--gateway", base)
    assert (bad.exit_code, bad.stderr) == (
        2,
        "Error: DATA: invalid JSON at line 1: Expecting property name enclosed in double quotes\n",
    )
    down = f"http://127.0.0.1:{free_port()}"
    unreachable = await run_cli("model", "infer", "iris", "{}", "--gateway", down)
    assert unreachable.exit_code == 1
    assert unreachable.stderr.startswith(f"Error: cannot reach the modelplane gateway at {down}")
