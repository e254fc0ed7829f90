"""Stopping what a test started in its own session (``start_new_session=True``), and running
client scripts in an interpreter of their own."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from typing import Any


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process's group (it and everything it spawned), SIGKILL after ``timeout``."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


async def run_python_json(
    script: str, *args: str, timeout: float = 60.0, python: str = sys.executable
) -> Any:
    """Run ``script`` in a fresh interpreter (``python -c``) with ``args``; its stdout is JSON.

    Clients whose protobuf package clashes with ours (tritonclient's gRPC stubs) run this way, and
    clients that cannot share our environment at all run in their own venv's ``python``.
    The process is killed if it outlives ``timeout``; a non-zero exit fails with its stderr."""
    proc = await asyncio.create_subprocess_exec(
        python,
        "-c",
        script,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stderr.decode()
    return json.loads(stdout)
