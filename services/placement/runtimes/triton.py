"""Triton Inference Server launched by the agent (explicit model control over the V2 API).

Triton is not installed on every machine: without a ``tritonserver`` binary the runtime reports
itself unavailable instead of failing (or hanging) the agent, and the replica takes no models.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from modelplane.libs.embedded_nats import free_port
from modelplane.services.placement.runtimes.base import ReadyProbe, RuntimeEndpoints, RuntimeExit
from modelplane.services.placement.runtimes.layouts import PlainLayout
from modelplane.services.placement.runtimes.process import ManagedProcess, exit_of
from modelplane.services.placement.types import ReplicaProfile

BINARY = "tritonserver"


class TritonRuntime:
    name = "triton"

    def __init__(
        self,
        profile: ReplicaProfile,
        *,
        repo: Path,
        state_dir: Path,
        advertise_host: str,
        http_port: int,
        grpc_port: int,
    ) -> None:
        self._profile = profile
        self._repo = repo
        self._state_dir = state_dir
        self._http_port = http_port or free_port()
        self._grpc_port = grpc_port or free_port()
        self._binary = shutil.which(BINARY)
        self.layout = PlainLayout()
        self.endpoints = RuntimeEndpoints(
            local_http=f"127.0.0.1:{self._http_port}",
            http=f"{advertise_host}:{self._http_port}",
            grpc=f"{advertise_host}:{self._grpc_port}",
        )
        self._process: ManagedProcess | None = None

    def unavailable_reason(self) -> str:
        return "" if self._binary else f"runtime unavailable: {BINARY} not found"

    async def start(self, ready: ReadyProbe, timeout: float) -> None:
        assert self._binary is not None, "start() called on an unavailable runtime"
        self._repo.mkdir(parents=True, exist_ok=True)
        argv = [
            self._binary,
            f"--model-repository={self._repo}",
            "--model-control-mode=explicit",
            f"--http-port={self._http_port}",
            f"--grpc-port={self._grpc_port}",
            f"--metrics-port={free_port()}",
            *self._profile.args,
        ]
        self._process = ManagedProcess(
            "triton",
            argv,
            cwd=self._state_dir,
            env={**os.environ, **self._profile.env},
            log_path=self._state_dir / "runtime.log",
        )
        await self._process.start()
        await self._process.wait_ready(ready, timeout)

    async def stop(self) -> None:
        if self._process is not None:
            await self._process.stop()

    async def wait_exit(self) -> RuntimeExit | None:
        return await exit_of(self._process)
