"""A custom V2 server started from the ServerConfig's argv template.

``{http_port}``, ``{grpc_port}`` and ``{model_repository}`` are substituted in every argument
(plain replacement, so other braces in arguments stay as they are). The server must speak the V2
health and repository APIs; model folders get an MLServer model-settings.json, the common case for
custom images built on MLServer.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from modelplane.services.placement.runtimes.base import ReadyProbe, RuntimeEndpoints, RuntimeExit
from modelplane.services.placement.runtimes.layouts import MLServerLayout
from modelplane.services.placement.runtimes.server_process import LaunchSpec, ServerProcess, choose_ports
from modelplane.services.placement.types import ReplicaProfile


def render(template: tuple[str, ...], values: dict[str, str]) -> list[str]:
    out: list[str] = []
    for arg in template:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


class CustomRuntime:
    name = "custom"

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
        self._ports = choose_ports(state_dir, {"http": http_port, "grpc": grpc_port})
        self._http_port = self._ports["http"]
        self._grpc_port = self._ports["grpc"]
        self.layout = MLServerLayout()
        self.endpoints = RuntimeEndpoints(
            local_http=f"127.0.0.1:{self._http_port}",
            http=f"{advertise_host}:{self._http_port}",
            grpc=f"{advertise_host}:{self._grpc_port}",
        )
        self.argv = render(
            (*profile.command, *profile.args),
            {
                "http_port": str(self._http_port),
                "grpc_port": str(self._grpc_port),
                "model_repository": str(repo),
            },
        )
        self._process: ServerProcess | None = None

    def unavailable_reason(self) -> str:
        if not self.argv:
            return f"runtime unavailable: ServerConfig {self._profile.server_config} has no command"
        if shutil.which(self.argv[0]) is None:
            return f"runtime unavailable: {self.argv[0]} not found"
        return ""

    def launch_spec(self) -> LaunchSpec:
        return LaunchSpec(
            name="custom",
            argv=tuple(self.argv),
            cwd=self._state_dir,
            log_path=self._state_dir / "runtime.log",
            env=dict(self._profile.env),
            ports=self._ports,
            endpoints={"http": self.endpoints.http, "grpc": self.endpoints.grpc},
        )

    async def start(self, ready: ReadyProbe, timeout: float) -> None:
        self._repo.mkdir(parents=True, exist_ok=True)
        self._process = ServerProcess(self.launch_spec(), self._state_dir)
        await self._process.start(ready, timeout)

    async def stop(self) -> None:
        if self._process is not None:
            await self._process.stop()

    async def wait_exit(self) -> RuntimeExit | None:
        return await self._process.wait_exit() if self._process is not None else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None
