"""The worker's own copy of the data plane, assembled as the gateway assembles its own (see
services/gateway/app.py): the route table kept in step with KV_ROUTES, the handler with holds,
retries and reloads, the HTTP client to replicas, usage reports to the agents and load signals
for the autoscaler. Step calls are timed into the load signals (step_calls.py)."""

from __future__ import annotations

import time
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.dataplane.balancers.round_robin import RoundRobin
from modelplane.libs.dataplane.handler import GatewayHandler
from modelplane.libs.dataplane.holding import RequestHold
from modelplane.libs.dataplane.load_signals import LoadSignals, WakeSignals, publish_loop
from modelplane.libs.dataplane.residency import NatsResidency
from modelplane.libs.dataplane.routing import RouteTable
from modelplane.libs.dataplane.upstream_http import HttpUpstream
from modelplane.libs.dataplane.watcher import RouteWatcher
from modelplane.libs.store import TypedBucket
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import state_pb2
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
        self.routes = RouteTable()
        self.upstream = HttpUpstream(settings.upstream_timeout_seconds)
        self.signals = LoadSignals(time.monotonic)
        self.handler: GatewayHandler | None = None

    async def start(self, nc: NATS, js: JetStreamContext, tasks: TaskSupervisor) -> TimedStepCalls:
        settings = self._settings
        bucket = await TypedBucket.open(js, subjects.KV_ROUTES, state_pb2.ModelRoute)
        tasks.spawn("dataflow-route-watcher", RouteWatcher(bucket, self.routes).run())
        residency = NatsResidency(nc, settings.reload_timeout_seconds)
        tasks.spawn("dataflow-usage-reports", residency.report_usage(settings.usage_report_interval))
        wakes = WakeSignals(settings.instance_id, lambda model: hold.held(model))
        hold = RequestHold(
            self.routes,
            hold_seconds=settings.hold_seconds,
            max_held=settings.max_held_per_model,
            on_first_hold=wakes.wake,
        )
        tasks.spawn("dataflow-wake-signals", wakes.run(nc))
        handler = GatewayHandler(
            self.routes,
            RoundRobin(),
            retries=settings.retries,
            is_connected=lambda: nc.is_connected,
            residency=residency,
            hold=hold,
        )
        self.handler = handler
        tasks.spawn(
            "dataflow-load-signals",
            publish_loop(
                nc,
                self.signals,
                handler.in_flight,
                hold.all_held,
                settings.instance_id,
                settings.load_report_interval,
            ),
        )
        await self.upstream.start()
        return TimedStepCalls(DirectStepCalls(handler, self.upstream), self.signals)

    async def close(self) -> None:
        await self.upstream.close()
