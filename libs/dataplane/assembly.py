"""The data plane assembled once for every process that forwards inference requests.

The gateway (services/gateway/app.py) and the dataflow workers (services/dataflow/dataplane.py)
each call models the same way, so both build the same collaborators here: the route table kept
in step with KV_ROUTES, usage reports to the agents (overcommit), the bounded hold and the wake
signal it sends the autoscaler, the handler with its balancers and retries, and the loop that
publishes load signals. What differs is passed in: the settings, the load-signal recorder and
the prefix of the task names (so each process's tasks say whose they are).
"""

from __future__ import annotations

from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.dataplane.balancers.round_robin import RoundRobin
from modelplane.libs.dataplane.handler import GatewayHandler
from modelplane.libs.dataplane.holding import RequestHold
from modelplane.libs.dataplane.load_signals import LoadSignals, WakeSignals, publish_loop
from modelplane.libs.dataplane.residency import NatsResidency
from modelplane.libs.dataplane.routing import RouteTable
from modelplane.libs.dataplane.settings import DataPlaneSettings
from modelplane.libs.dataplane.watcher import RouteWatcher
from modelplane.libs.store import TypedBucket
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import state_pb2


class DataPlane:
    """Route table, hold and handler of one process, started under its task supervisor."""

    def __init__(self, settings: DataPlaneSettings, routes: RouteTable | None = None) -> None:
        self._settings = settings
        self.routes = routes if routes is not None else RouteTable()
        self.handler: GatewayHandler | None = None
        self._hold: RequestHold | None = None

    def held(self) -> dict[str, int]:
        """Model -> requests held now (empty before ``start``)."""
        return self._hold.all_held() if self._hold is not None else {}

    async def start(
        self,
        nc: NATS,
        js: JetStreamContext,
        tasks: TaskSupervisor,
        signals: LoadSignals,
        *,
        task_prefix: str = "",
        is_connected: Callable[[], bool] | None = None,
    ) -> GatewayHandler:
        """Start the watcher, usage reports, wake and load signals; the handler to forward with."""
        settings = self._settings
        bucket = await TypedBucket.open(js, subjects.KV_ROUTES, state_pb2.ModelRoute)
        tasks.spawn(f"{task_prefix}route-watcher", RouteWatcher(bucket, self.routes).run())
        residency = NatsResidency(nc, settings.reload_timeout_seconds)
        tasks.spawn(f"{task_prefix}usage-reports", residency.report_usage(settings.usage_report_interval))
        wakes = WakeSignals(settings.instance_id, lambda model: hold.held(model))
        hold = RequestHold(
            self.routes,
            hold_seconds=settings.hold_seconds,
            max_held=settings.max_held_per_model,
            on_first_hold=wakes.wake,
        )
        self._hold = hold
        tasks.spawn(f"{task_prefix}wake-signals", wakes.run(nc))
        handler = GatewayHandler(
            self.routes,
            RoundRobin(),
            retries=settings.retries,
            is_connected=is_connected if is_connected is not None else (lambda: nc.is_connected),
            residency=residency,
            hold=hold,
        )
        self.handler = handler
        tasks.spawn(
            f"{task_prefix}load-signals",
            publish_loop(
                nc,
                signals,
                handler.in_flight,
                hold.all_held,
                settings.instance_id,
                settings.load_report_interval,
            ),
        )
        return handler
