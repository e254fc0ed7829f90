"""Seldon v2 scheduling end to end with real MLServer replicas started by `modelplane up`:
capability matching across two Servers, replicas spread on one server, partial scheduling with a
scale-up request, a killed replica's models moving, and a version rollout under load."""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.stack import UpProcess, wait_until
from tests.helpers.iris import IrisModel, build_iris_model

# The scheduler's scale requests stay pending here, as in Seldon without an operator acting on
# them: this test checks partial scheduling and the request itself; the autoscaler acting on it
# is tests/e2e/test_autoscaling_e2e.py.
UP_ENV = {"MODELPLANE_AUTOSCALER_SERVER_SCALING": "false"}

SERVERS = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Server
metadata:
  name: small
spec:
  serverConfig: mlserver
  extraCapabilities: [custom-cap]
  replicas: 1
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Server
metadata:
  name: mlserver
spec:
  serverConfig: mlserver
  replicas: 2
"""

MODEL = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: {name}
spec:
  storageUri: file://{path}
  requirements: {requirements}
  replicas: {replicas}
  minReplicas: {min_replicas}
{extra}"""


def status(stack: UpProcess, kind: str, name: str) -> dict[str, Any]:
    done = stack.cli(kind, "status", name, "-o", "json", timeout=20)
    assert done.code == 0, done
    data: dict[str, Any] = json.loads(done.out)
    current: dict[str, Any] = data.get("status", data)
    return current


def apply_model(
    stack: UpProcess,
    tmp_path: Path,
    name: str,
    iris: IrisModel,
    requirements: list[str],
    replicas: int = 1,
    min_replicas: int = 0,
    extra: str = "",
) -> None:
    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(
        MODEL.format(
            name=name,
            path=iris.path,
            requirements=json.dumps(requirements),
            replicas=replicas,
            min_replicas=min_replicas,
            extra=extra,
        )
    )
    done = stack.cli("apply", "-f", str(manifest))
    assert done.code == 0, done


def placed_on(stack: UpProcess, name: str) -> set[str]:
    current = status(stack, "model", name)
    return {
        f"{r['server']}.{r.get('index', 0)}"
        for r in current.get("replicas", [])
        if r.get("state") == "Available"
    }


def infer(stack: UpProcess, name: str, iris: IrisModel) -> list[int]:
    body = json.dumps(iris.v2_request(rows=3)).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.ports.gateway_http}/v2/models/{name}/infer",
        data=body,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(json.loads(response.read())["outputs"][0]["data"])


class Looper:
    """A client that keeps sending requests and counts the ones that fail."""

    def __init__(self, stack: UpProcess, name: str, iris: IrisModel) -> None:
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(stack, name, iris), daemon=True)

    def _run(self, stack: UpProcess, name: str, iris: IrisModel) -> None:
        expected = iris.expected[:3].tolist()
        while not self._stop.is_set():
            try:
                got = infer(stack, name, iris)
                if got == expected:
                    self.ok += 1
                else:
                    self.failures.append(f"wrong answer {got}")
            except (urllib.error.URLError, OSError) as exc:
                detail = (
                    exc.read().decode(errors="replace") if isinstance(exc, urllib.error.HTTPError) else ""
                )
                self.failures.append(f"{exc} {detail}")

    def __enter__(self) -> Looper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(15)


def runtime_pid(stack: UpProcess, replica_dir: str) -> int:
    """pid of the MLServer serving the replica whose state folder is ``replica_dir``."""
    marker = str(stack.state_dir / "replicas" / replica_dir / "models")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.decode(errors="replace") == marker for part in cmdline) and b"start" in cmdline:
            return int(entry.name)
    raise AssertionError(f"no model server process for {replica_dir}")


def test_seldon_scheduling_scenario(stack: UpProcess, tmp_path: Path) -> None:
    """Capability matching, spreading, partial scheduling, failover and rollout, on real replicas."""
    servers = tmp_path / "servers.yaml"
    servers.write_text(SERVERS)
    assert stack.cli("apply", "-f", str(servers)).code == 0

    def servers_ready() -> bool:
        return all(
            status(stack, "server", s).get("state") == "ServerReady" for s in ("small", "mlserver")
        ) and (status(stack, "server", "mlserver").get("availableReplicas") == 2)

    wait_until(servers_ready, 120, "servers small (1 replica) and mlserver (2 replicas) ready")
    iris = build_iris_model(tmp_path / "iris")

    # A model that needs custom-cap lands on `small`, the only server offering it.
    apply_model(stack, tmp_path, "custom", iris, ["sklearn", "custom-cap"])
    wait_until(lambda: placed_on(stack, "custom") == {"small.0"}, 90, "custom on small.0")
    assert infer(stack, "custom", iris) == iris.expected[:3].tolist()

    # Two replicas of one model go to the two replicas of one server (no custom-cap needed).
    apply_model(stack, tmp_path, "pair", iris, ["sklearn"], replicas=2)
    wait_until(
        lambda: placed_on(stack, "pair") == {"mlserver.0", "mlserver.1"}, 90, "pair on mlserver.0 and .1"
    )

    # Asking for 3 with minReplicas 1: stays Available on 2 replicas and a scale-up is requested.
    apply_model(stack, tmp_path, "pair", iris, ["sklearn"], replicas=3, min_replicas=1)
    wait_until(
        lambda: "scale" in json.dumps(status(stack, "server", "mlserver")).lower(), 60, "a scale-up request"
    )
    pair = status(stack, "model", "pair")
    assert pair["state"] == "ModelAvailable", pair
    assert len(placed_on(stack, "pair")) == 2

    # Killing one mlserver replica's model server moves its models; inference keeps working.
    with Looper(stack, "pair", iris) as looper:
        os.kill(runtime_pid(stack, "mlserver-1"), signal.SIGKILL)
        wait_until(
            lambda: "mlserver.1" not in placed_on(stack, "pair") or looper.ok > 200, 60, "replica 1 dropped"
        )
        wait_until(lambda: status(stack, "model", "pair")["state"] == "ModelAvailable", 60, "pair Available")
        wait_until(lambda: looper.ok > 20, 30, "requests answered after the kill")
    assert looper.failures == [], looper.failures[:5]

    # A spec change rolls to version 2 with no failed request while a client loops throughout.
    version_before = int(status(stack, "model", "custom").get("version", 1))
    with Looper(stack, "custom", iris) as looper:
        apply_model(
            stack, tmp_path, "custom", iris, ["sklearn", "custom-cap"], extra="  artifactVersion: v2\n"
        )
        wait_until(
            lambda: (
                int(status(stack, "model", "custom").get("version", 0)) == version_before + 1
                and status(stack, "model", "custom")["state"] == "ModelAvailable"
            ),
            90,
            "custom version 2 Available",
        )
        ok_at_switch = looper.ok
        wait_until(lambda: looper.ok > ok_at_switch + 50, 30, "requests after the rollout")
    assert looper.failures == [], looper.failures[:5]
    assert looper.ok > 50
