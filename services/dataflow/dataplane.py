"""The worker's own data plane, assembled by libs/dataplane/assembly.py exactly as the gateway's:
the route table kept in step with KV_ROUTES, the handler with holds, retries and reloads, usage
reports to the agents and load signals for the autoscaler; plus the HTTP client to replicas.
Step calls are timed into the load signals (step_calls.py)."""

from __future__ import annotations

import time
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs.dataplane.assembly import DataPlane
from modelplane.libs.dataplane.handler import GatewayHandler
from modelplane.libs.dataplane.load_signals import LoadSignals
from modelplane.libs.dataplane.upstream_http import HttpUpstream
from modelplane.libs.tasks import TaskSupervisor
from modelplane.services.dataflow.settings import DataflowSettings
from modelplane.services.dataflow.step_calls import DirectStepCalls


class TimedStepCalls:
    """DirectStepCalls whose every call is timed into the load signals (as the gateway times a
    client's request)."""

    def __init__(self, calls: DirectStepCalls, signals: LoadSignals) -> None:
        self._calls = calls
        self._signals = signals

    async def infer(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return await self._calls.infer(model, request)
        finally:
            self._signals.observe(model, time.perf_counter() - started)


class WorkerDataPlane:
    def __init__(self, settings: DataflowSettings) -> None:
        self._settings = settings
        self._plane = DataPlane(settings)
        self.routes = self._plane.routes
        self.upstream = HttpUpstream(settings.upstream_timeout_seconds)
        self.signals = LoadSignals(time.monotonic)
        self.handler: GatewayHandler | None = None

    async def start(self, nc: NATS, js: JetStreamContext, tasks: TaskSupervisor) -> TimedStepCalls:
        handler = await self._plane.start(nc, js, tasks, self.signals, task_prefix="dataflow-")
        self.handler = handler
        await self.upstream.start()
        return TimedStepCalls(DirectStepCalls(handler, self.upstream), self.signals)

    async def close(self) -> None:
        await self.upstream.close()
