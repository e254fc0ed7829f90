"""Supervised children: stopped by their own pid, restarted loudly when they crash."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from modelplane.libs.tasks import TaskSupervisor
from modelplane.up.children import Child


async def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_stop_terminates_the_child_by_pid() -> None:
    """stop() ends exactly the process it started and is idempotent."""
    sup = TaskSupervisor("test")
    child = Child("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], {}, sup)
    await child.start()
    pid = child.pid
    assert pid is not None
    await child.stop()
    await child.stop()
    await _wait_for(lambda: not Path(f"/proc/{pid}").exists() or _is_zombie(pid))
    await sup.close()


async def test_a_crashed_child_is_restarted(tmp_path: Path) -> None:
    """A child that exits on its own is started again (and logged as crashed)."""
    sup = TaskSupervisor("test")
    marker = tmp_path / "runs"
    script = f"open({str(marker)!r}, 'a').write('x'); import sys; sys.exit(3)"
    child = Child("crasher", [sys.executable, "-c", script], {}, sup, max_backoff=0.2)
    await child.start()
    await _wait_for(lambda: marker.exists() and len(marker.read_text()) >= 2)
    assert child.restarts >= 1
    await child.stop()
    await sup.close()


async def test_environment_is_passed_to_the_child(tmp_path: Path) -> None:
    """The child sees the variables the supervisor gives it."""
    sup = TaskSupervisor("test")
    out = tmp_path / "env"
    script = (
        f"import os; open({str(out)!r}, 'w').write(os.environ['MODELPLANE_X']); import time; time.sleep(60)"
    )
    child = Child("env", [sys.executable, "-c", script], {"MODELPLANE_X": "42"}, sup)
    await child.start()
    await _wait_for(lambda: out.exists() and out.read_text() == "42")
    await child.stop()
    await sup.close()


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except OSError:
        return True
