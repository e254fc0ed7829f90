"""Agent restart end to end: a placement agent killed outright is restarted by `up`, adopts the
MLServer it had launched (same pid) and reports its models, so they stay Available on the same
replica without a reload, and a client looping through the gateway sees no failed request."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from tests.e2e.stack import UpProcess, wait_until
from tests.e2e.test_scheduling import Looper, apply_model, infer, placed_on, runtime_pid, status
from tests.helpers.iris import build_iris_model

MODEL = "sturdy"


def agent_pid(stack: UpProcess, replica_dir: str) -> int | None:
    """pid of the placement agent (`modelplane run placement`) of the replica ``replica_dir``."""
    marker = f"MODELPLANE_PLACEMENT_STATE_DIR={stack.state_dir / 'replicas' / replica_dir}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        # The model server inherits the agent's environment: the command line tells them apart.
        if state != "Z" and b"placement" in cmdline and b"run" in cmdline and marker in environ:
            return int(entry.name)
    return None


def log_text(stack: UpProcess) -> str:
    return stack.log_path.read_text(errors="replace")


def server_log(stack: UpProcess) -> str:
    """The log of the replica's MLServer (its main process and workers both log a load)."""
    return (stack.state_dir / "replicas" / "mlserver-0" / "runtime.log").read_text(errors="replace")


def events(stack: UpProcess, name: str) -> list[dict[str, Any]]:
    """The JSON log records of every service under `up` whose event is ``name``."""
    found = []
    for line in log_text(stack).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == name:
            found.append(record)
    return found


def loads_of(stack: UpProcess, model: str) -> int:
    """How many times an agent started loading ``model``."""
    return sum(1 for record in events(stack, "model_loading") if record.get("model") == model)


def test_killed_agent_restarts_and_keeps_its_models_loaded(stack: UpProcess, tmp_path: Path) -> None:
    """SIGKILL of the agent: `up` restarts it, it adopts the same MLServer, the model stays
    Available on the same replica without a reload, and no looping request fails."""
    iris = build_iris_model(tmp_path / "iris")
    apply_model(stack, tmp_path, MODEL, iris, ["sklearn"])
    wait_until(lambda: placed_on(stack, MODEL) == {"mlserver.0"}, 90, f"{MODEL} on mlserver.0")
    assert infer(stack, MODEL, iris) == iris.expected[:3].tolist()

    server_pid = runtime_pid(stack, "mlserver-0")
    old_agent = agent_pid(stack, "mlserver-0")
    assert old_agent is not None
    loads_before = loads_of(stack, MODEL)
    assert loads_before == 1
    ready_before = len(events(stack, "placement_ready"))
    server_loads_before = server_log(stack).count(f"Loaded model '{MODEL}_")
    assert server_loads_before >= 1

    with Looper(stack, MODEL, iris) as looper:
        wait_until(lambda: looper.ok > 5, 30, "requests flowing before the kill")
        os.kill(old_agent, signal.SIGKILL)
        wait_until(
            lambda: agent_pid(stack, "mlserver-0") not in (None, old_agent), 60, "up restarted the agent"
        )
        wait_until(
            lambda: len(events(stack, "placement_ready")) > ready_before,
            60,
            "the new agent incarnation registered",
        )
        assert [r["pid"] for r in events(stack, "runtime_adopted")] == [server_pid]
        wait_until(lambda: placed_on(stack, MODEL) == {"mlserver.0"}, 30, f"{MODEL} Available on mlserver.0")
        served = looper.ok
        wait_until(lambda: looper.ok > served + 20, 30, "requests answered after the restart")

    assert looper.failures == [], looper.failures[:5]
    assert runtime_pid(stack, "mlserver-0") == server_pid
    assert status(stack, "model", MODEL)["state"] == "ModelAvailable"
    assert placed_on(stack, MODEL) == {"mlserver.0"}
    # Not reloaded: no second load by an agent, and MLServer itself never unloaded it.
    assert loads_of(stack, MODEL) == loads_before
    assert "Unloaded" not in server_log(stack)
    assert server_log(stack).count(f"Loaded model '{MODEL}_") == server_loads_before
