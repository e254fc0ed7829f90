"""MLServer launched by the agent: settings.json in the repository, ``mlserver start <repo>``."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from modelplane.services.placement.runtimes.base import ReadyProbe, RuntimeEndpoints, RuntimeExit
from modelplane.services.placement.runtimes.layouts import MLServerLayout
from modelplane.services.placement.runtimes.mlserver_implementations import installed_modules
from modelplane.services.placement.runtimes.server_process import LaunchSpec, ServerProcess, choose_ports
from modelplane.services.placement.types import ReplicaProfile


def find_mlserver() -> str | None:
    """The mlserver next to our interpreter (the venv) first, then PATH."""
    beside = Path(sys.executable).parent / "mlserver"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("mlserver")


class MLServerRuntime:
    """An MLServer child process serving ``repo`` on its own ports."""

    name = "mlserver"

    def __init__(
        self,
        profile: ReplicaProfile,
        *,
        repo: Path,
        state_dir: Path,
        bind_host: str,
        advertise_host: str,
        http_port: int,
        grpc_port: int,
    ) -> None:
        self._profile = profile
        self._repo = repo
        self._state_dir = state_dir
        self._bind_host = bind_host
        # A 0 port reuses the port of a server a previous agent left running, so it can be adopted.
        self._ports = choose_ports(state_dir, {"http": http_port, "grpc": grpc_port, "metrics": 0})
        self._http_port = self._ports["http"]
        self._grpc_port = self._ports["grpc"]
        self._binary = find_mlserver()
        # Our own mlserver runs on our interpreter: what it can import, we can see (once, here).
        beside_us = self._binary is not None and Path(self._binary).parent == Path(sys.executable).parent
        self.layout = MLServerLayout(installed=installed_modules() if beside_us else None)
        self.endpoints = RuntimeEndpoints(
            local_http=f"127.0.0.1:{self._http_port}",
            http=f"{advertise_host}:{self._http_port}",
            grpc=f"{advertise_host}:{self._grpc_port}",
        )
        self._process: ServerProcess | None = None

    def unavailable_reason(self) -> str:
        return "" if self._binary else "runtime unavailable: mlserver not found"

    def launch_spec(self) -> LaunchSpec:
        assert self._binary is not None, "no mlserver binary"
        settings: dict[str, Any] = {
            "host": self._bind_host,
            "http_port": self._http_port,
            "grpc_port": self._grpc_port,
            "metrics_port": self._ports["metrics"],
            "metrics_dir": str(self._state_dir / "metrics"),
            "load_models_at_startup": False,
            "parallel_workers": self._profile.parallel_workers,
            "debug": False,
        }
        return LaunchSpec(
            name="mlserver",
            argv=(self._binary, "start", str(self._repo), *self._profile.args),
            cwd=self._state_dir,
            log_path=self._state_dir / "runtime.log",
            env=dict(self._profile.env),
            ports=self._ports,
            endpoints={"http": self.endpoints.http, "grpc": self.endpoints.grpc},
            config=settings,
        )

    async def start(self, ready: ReadyProbe, timeout: float) -> None:
        assert self._binary is not None, "start() called on an unavailable runtime"
        spec = self.launch_spec()
        self._repo.mkdir(parents=True, exist_ok=True)
        (self._state_dir / "metrics").mkdir(parents=True, exist_ok=True)
        # Rewritten unchanged when the running server is adopted (same fingerprint, same content).
        (self._repo / "settings.json").write_text(json.dumps(spec.config, indent=2))
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
