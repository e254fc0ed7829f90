"""A model server someone else runs (a Kubernetes sidecar pair): wait for it, never stop it."""

from __future__ import annotations

from modelplane.libs.errors import DeadlineError
from modelplane.services.placement.runtimes.base import (
    ModelLayout,
    ReadyProbe,
    RuntimeEndpoints,
    RuntimeExit,
    ready_within,
)

_PROBE_INTERVAL = 0.2  # seconds between readiness probes


class AttachedRuntime:
    """Drives an existing server at fixed endpoints; the pod, not the agent, owns its process."""

    def __init__(self, name: str, layout: ModelLayout, http_endpoint: str, grpc_endpoint: str) -> None:
        self.name = name
        self.layout = layout
        self.endpoints = RuntimeEndpoints(local_http=http_endpoint, http=http_endpoint, grpc=grpc_endpoint)

    def unavailable_reason(self) -> str:
        return ""

    async def start(self, ready: ReadyProbe, timeout: float) -> None:
        if not await ready_within(ready, timeout, _PROBE_INTERVAL):
            raise DeadlineError(
                f"{self.name} at {self.endpoints.local_http} was not ready within {timeout:g}s"
            )

    async def stop(self) -> None:
        return None

    async def wait_exit(self) -> RuntimeExit | None:
        # The pod owns the process: its death shows as failing readiness, not as an exit here.
        return None
