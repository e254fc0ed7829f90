"""Launch a model server, or adopt the one a previous agent of this replica left running.

Design: a server launched by the agent writes ``<state_dir>/runtime.json`` (a libs.process
ProcessRecord: pid, the pid's start time, a fingerprint of the launch, ports, endpoints). An agent
that crashes leaves its server running; when it comes back it finds the record and adopts the
server if all of these hold:

- the pid is alive and has the recorded start time (a recycled pid is never mistaken for ours),
- the fingerprint matches (same argv, ServerConfig env, ports and server config), and
- the server answers ready within a short timeout.

Adopting keeps the process, its ports and every model it has loaded; the agent then learns those
models from the repository index (PlacementHandler.sync_loaded) and reports them to the scheduler
in its registration. Otherwise a recorded process that is still ours is killed (whole group) and a
fresh server starts. Ports configured as 0 reuse the recorded server's ports, so its fingerprint
can match at all. A clean stop stops the server and removes the record.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from modelplane.libs.embedded_nats import free_port
from modelplane.libs.process import (
    ProcessRecord,
    group_members,
    is_same_process,
    kill_group_if_same,
    read_record,
    remove_record,
    start_time,
    write_record,
)
from modelplane.services.placement.runtimes.base import ReadyProbe, RuntimeExit, ready_within
from modelplane.services.placement.runtimes.environment import server_environment
from modelplane.services.placement.runtimes.process import (
    AdoptedProcess,
    ManagedProcess,
    ServerProcessHandle,
    exit_of,
)

log = structlog.get_logger(__name__)

RECORD_NAME = "runtime.json"
# Seconds an adoption candidate gets to answer ready: a healthy server answers at once.
ADOPT_READY_TIMEOUT = 5.0
# Seconds to wait for a killed stale server to be gone before starting on its ports.
_STALE_GONE_TIMEOUT = 10.0
_PROBE_INTERVAL = 0.1  # seconds between probes


def record_path(state_dir: Path) -> Path:
    return state_dir / RECORD_NAME


def choose_ports(state_dir: Path, configured: Mapping[str, int]) -> dict[str, int]:
    """Configured ports as they are; each 0 takes the recorded live server's port, else a free one."""
    record = read_record(record_path(state_dir))
    recorded = record.ports if record is not None and record.alive() else {}
    return {name: port or recorded.get(name) or free_port() for name, port in configured.items()}


@dataclass(frozen=True)
class LaunchSpec:
    """What starts a server; its fingerprint decides whether a running one can be adopted."""

    name: str
    argv: tuple[str, ...]
    cwd: Path
    log_path: Path
    # Environment entries that matter (the ServerConfig's), set over the allowed part of the
    # agent's environment (runtimes/environment.py).
    env: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)
    endpoints: Mapping[str, str] = field(default_factory=dict)
    # Configuration the server reads from a file rather than argv (MLServer's settings.json).
    config: Mapping[str, object] = field(default_factory=dict)

    def fingerprint(self) -> str:
        identity = {
            "name": self.name,
            "argv": list(self.argv),
            "env": dict(self.env),
            "ports": dict(self.ports),
            "config": dict(self.config),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


class ServerProcess:
    """One replica's server process: launched (and recorded) or adopted; stopped with its group."""

    def __init__(self, spec: LaunchSpec, state_dir: Path) -> None:
        self.spec = spec
        self.record_path = record_path(state_dir)
        self._handle: ServerProcessHandle | None = None
        self.adopted = False

    @property
    def pid(self) -> int | None:
        return self._handle.pid if self._handle else None

    async def start(self, ready: ReadyProbe, timeout: float) -> None:
        record = read_record(self.record_path)
        if record is not None and record.alive():
            if record.fingerprint == self.spec.fingerprint() and await self._adopt(record, ready):
                return
            await _kill_stale(self.spec.name, record)
        remove_record(self.record_path)
        process = ManagedProcess(
            self.spec.name,
            self.spec.argv,
            cwd=self.spec.cwd,
            # Never the agent's whole environment: it holds NATS and cloud credentials.
            env=server_environment(os.environ, self.spec.env),
            log_path=self.spec.log_path,
        )
        self._handle = process
        await process.start()
        pid = process.pid
        started = start_time(pid) if pid is not None else None
        if pid is not None and started is not None:
            write_record(
                self.record_path,
                ProcessRecord(
                    pid=pid,
                    start_time=started,
                    fingerprint=self.spec.fingerprint(),
                    ports=dict(self.spec.ports),
                    endpoints=dict(self.spec.endpoints),
                ),
            )
        await process.wait_ready(ready, timeout)

    async def _adopt(self, record: ProcessRecord, ready: ReadyProbe) -> bool:
        try:
            # The pidfd pins the process: checked once more after opening, it cannot be a recycled pid.
            pidfd = os.pidfd_open(record.pid)
        except OSError:
            return False
        if not is_same_process(record.pid, record.start_time) or not await ready_within(
            ready, ADOPT_READY_TIMEOUT
        ):
            os.close(pidfd)
            log.warning("runtime_adoption_refused", runtime=self.spec.name, pid=record.pid)
            return False
        self._handle = AdoptedProcess(self.spec.name, record.pid, pidfd, self.spec.log_path)
        self.adopted = True
        log.info("runtime_adopted", runtime=self.spec.name, pid=record.pid, ports=record.ports)
        return True

    async def stop(self) -> None:
        """Stop the server's whole group and forget it (idempotent)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            await handle.stop()
            remove_record(self.record_path)

    async def wait_exit(self) -> RuntimeExit | None:
        return await exit_of(self._handle)


async def _kill_stale(name: str, record: ProcessRecord) -> None:
    """Kill a recorded server we will not adopt, and wait until its ports are free again."""
    if not kill_group_if_same(record.pid, record.start_time, signal.SIGKILL):
        return
    log.info("runtime_stale_killed", runtime=name, pid=record.pid)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STALE_GONE_TIMEOUT
    # Every member of the group, not just the leader: a dying worker may still hold a socket.
    while await asyncio.to_thread(group_members, record.pid):
        if loop.time() >= deadline:
            log.warning("runtime_stale_lingers", runtime=name, pid=record.pid)
            return
        await asyncio.sleep(_PROBE_INTERVAL)
