"""Triton Inference Server launched by the agent (explicit model control over the V2 API).

Triton is not installed on every machine: without a ``tritonserver`` binary the runtime reports
itself unavailable instead of failing (or hanging) the agent, and the replica takes no models.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from modelplane.services.placement.runtimes.base import ReadyProbe, RuntimeEndpoints, RuntimeExit
from modelplane.services.placement.runtimes.layouts import PlainLayout
from modelplane.services.placement.runtimes.server_process import LaunchSpec, ServerProcess, choose_ports
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
        # A 0 port reuses the port of a server a previous agent left running, so it can be adopted.
        self._ports = choose_ports(state_dir, {"http": http_port, "grpc": grpc_port, "metrics": 0})
        self._http_port = self._ports["http"]
        self._grpc_port = self._ports["grpc"]
        self._binary = shutil.which(BINARY)
        self.layout = PlainLayout()
        self.endpoints = RuntimeEndpoints(
            local_http=f"127.0.0.1:{self._http_port}",
            http=f"{advertise_host}:{self._http_port}",
            grpc=f"{advertise_host}:{self._grpc_port}",
        )
        self._process: ServerProcess | None = None

    def unavailable_reason(self) -> str:
        return "" if self._binary else f"runtime unavailable: {BINARY} not found"

    def launch_spec(self) -> LaunchSpec:
        assert self._binary is not None, "no tritonserver binary"
        argv = [
            self._binary,
            f"--model-repository={self._repo}",
            "--model-control-mode=explicit",
            f"--http-port={self._http_port}",
            f"--grpc-port={self._grpc_port}",
            f"--metrics-port={self._ports['metrics']}",
            *self._profile.args,
        ]
        return LaunchSpec(
            name="triton",
            argv=tuple(argv),
            cwd=self._state_dir,
            log_path=self._state_dir / "runtime.log",
            env=dict(self._profile.env),
            ports=self._ports,
            endpoints={"http": self.endpoints.http, "grpc": self.endpoints.grpc},
        )

    async def start(self, ready: ReadyProbe, timeout: float) -> None:
        assert self._binary is not None, "start() called on an unavailable runtime"
        spec = self.launch_spec()
        self._repo.mkdir(parents=True, exist_ok=True)
        self._process = ServerProcess(spec, self._state_dir)
        await self._process.start(ready, timeout)

    async def stop(self) -> None:
        if self._process is not None:
            await self._process.stop()

    async def wait_exit(self) -> RuntimeExit | None:
        return await self._process.wait_exit() if self._process is not None else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None
