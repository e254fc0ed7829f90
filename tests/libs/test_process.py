"""die_with_parent: a child started with it does not outlive a parent killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

PARENT = """
import subprocess, sys, time
from modelplane.libs.process import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                         start_new_session=True, preexec_fn=die_with_parent)
print(child.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PDEATHSIG is Linux-only")
def test_child_gets_sigterm_when_parent_is_killed() -> None:
    """SIGKILL of the parent ends the child too, even though it runs in its own session."""
    with subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        try:
            assert _alive(child_pid)
            parent.send_signal(signal.SIGKILL)
            parent.wait(10)
            deadline = time.monotonic() + 10
            while _alive(child_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not _alive(child_pid)
        finally:
            parent.kill()
            if _alive(child_pid):
                os.kill(child_pid, signal.SIGKILL)
