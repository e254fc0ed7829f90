"""The runtime abstraction the agent talks to, so it does not care which model server runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from modelplane.libs.resources.types import ModelSpec

# Answers "is the model server ready?" (GET /v2/health/ready); supplied by the agent.
ReadyProbe = Callable[[], Awaitable[bool]]


async def ready_within(ready: ReadyProbe, timeout: float, interval: float = 0.1) -> bool:
    """Probe every ``interval`` seconds until ``ready`` says so (True) or ``timeout`` passes (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await ready():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


@dataclass(frozen=True, slots=True)
class RuntimeEndpoints:
    """host:port pairs: ``local_*`` is what the agent dials, the others what it advertises."""

    local_http: str
    http: str
    grpc: str


class ModelLayout(Protocol):
    """Writes whatever a runtime needs beside an artifact copied into its model folder."""

    def prepare(self, folder: Path, server_name: str, spec: ModelSpec, artifact_name: str) -> None:
        """Finish ``folder`` (the artifact is already inside) for loading as ``server_name``."""


class Runtime(Protocol):
    """One model server the agent drives through the V2 repository API."""

    @property
    def name(self) -> str: ...

    @property
    def endpoints(self) -> RuntimeEndpoints: ...

    @property
    def layout(self) -> ModelLayout: ...

    def unavailable_reason(self) -> str:
        """Why this runtime cannot run here ("" when it can)."""

    async def start(self, ready: ReadyProbe, timeout: float) -> None:
        """Start (or attach to) the server and return once ``ready`` says so."""

    async def stop(self) -> None:
        """Stop what ``start`` started (idempotent)."""

    async def wait_exit(self) -> RuntimeExit | None:
        """Wait until a process ``start`` launched exits by itself; None at once when there is none
        (an attached server, or one never started)."""


@dataclass(frozen=True, slots=True)
class RuntimeExit:
    """How a runtime process ended: its exit code and the last lines of its log."""

    code: int
    log_tail: str
