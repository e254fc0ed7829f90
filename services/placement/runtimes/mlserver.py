"""MLServer launched by the agent: settings.json in the repository, ``mlserver start <repo>``."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from modelplane.libs.embedded_nats import free_port
from modelplane.services.placement.runtimes.base import ReadyProbe, RuntimeEndpoints, RuntimeExit
from modelplane.services.placement.runtimes.layouts import MLServerLayout
from modelplane.services.placement.runtimes.process import ManagedProcess, exit_of
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
        self._http_port = http_port or free_port()
        self._grpc_port = grpc_port or free_port()
        self._binary = find_mlserver()
        self.layout = MLServerLayout()
        self.endpoints = RuntimeEndpoints(
            local_http=f"127.0.0.1:{self._http_port}",
            http=f"{advertise_host}:{self._http_port}",
            grpc=f"{advertise_host}:{self._grpc_port}",
        )
        self._process: ManagedProcess | None = None

    def unavailable_reason(self) -> str:
        return "" if self._binary else "runtime unavailable: mlserver not found"

    def _write_settings(self) -> None:
        settings = {
            "host": self._bind_host,
            "http_port": self._http_port,
            "grpc_port": self._grpc_port,
            "metrics_port": free_port(),
            "metrics_dir": str(self._state_dir / "metrics"),
            "load_models_at_startup": False,
            "parallel_workers": self._profile.parallel_workers,
            "debug": False,
        }
        (self._state_dir / "metrics").mkdir(parents=True, exist_ok=True)
        (self._repo / "settings.json").write_text(json.dumps(settings, indent=2))

    async def start(self, ready: ReadyProbe, timeout: float) -> None:
        assert self._binary is not None, "start() called on an unavailable runtime"
        self._repo.mkdir(parents=True, exist_ok=True)
        self._write_settings()
        self._process = ManagedProcess(
            "mlserver",
            [self._binary, "start", str(self._repo), *self._profile.args],
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

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None
