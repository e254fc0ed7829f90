"""Shutdown of a scheduler term: events that arrive while it winds down are dropped cleanly."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from modelplane.libs.resources.types import Meta, Model, ModelSpec
from modelplane.libs.routes import Route
from modelplane.libs.tasks import KeyedWorkers, TaskSupervisor
from modelplane.services.scheduler.cluster import ReplicaRecord, ServerRecord
from modelplane.services.scheduler.handler import Scheduler
from modelplane.services.scheduler.records import (
    AgentReport,
    CommandResult,
    ModelRecord,
    ScaleRequest,
    ServerUsage,
)

MI = 1 << 20


class Agents:
    """Accepts every command."""

    async def load(self, server: str, index: int, model: str, version: int, spec: ModelSpec) -> CommandResult:
        return CommandResult(True)

    async def unload(self, server: str, index: int, model: str, version: int) -> CommandResult:
        return CommandResult(True)


class StubbornOutputs:
    """Blocks the first save until cancelled, then returns normally, as a NATS request can.

    ``asyncio.wait_for`` (under nats-py's request) returns the result instead of raising when the
    cancellation and the reply arrive together, so a work item may run on after its task was
    cancelled: this reproduces that deterministically.
    """

    def __init__(self) -> None:
        self.saving = asyncio.Event()
        self._blocked = False

    async def save(self, record: ModelRecord, route: Route) -> None:
        if self._blocked:
            return
        self._blocked = True
        self.saving.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return  # swallowed: the work goes on to its next steps

    async def remove(self, model: str) -> None:
        return None


class ServerOutputs:
    async def save_usage(self, usage: ServerUsage) -> None:
        return None

    async def remove_usage(self, server: str) -> None:
        return None

    async def request_scale(self, request: ScaleRequest) -> None:
        return None

    async def clear_scale(self, server: str) -> None:
        return None


def replica(index: int) -> ReplicaRecord:
    return ReplicaRecord("mlserver", index, "i", ("sklearn",), 100 * MI, 0, "h", "g")


def iris() -> Model:
    return Model(Meta("iris"), ModelSpec(storage_uri="file:///m", requirements=("sklearn",), memory_bytes=MI))


async def test_work_running_past_cancellation_starts_nothing_after_stop() -> None:
    """A work item that outlives its cancelled task does not submit work to the closed supervisor."""
    supervisor = TaskSupervisor("scheduler")
    outputs = StubbornOutputs()
    handler = Scheduler(
        Agents(),
        outputs,
        KeyedWorkers(supervisor, "model"),
        heartbeat_timeout=60,
        server_outputs=ServerOutputs(),
    )
    handler.server_changed("mlserver", ServerRecord("mlserver", 1, "mlserver"))
    handler.replica_changed("mlserver.0", replica(0))
    handler.start()
    handler.model_changed("iris", iris())
    await asyncio.wait_for(outputs.saving.wait(), 10)

    with capture_logs() as logs:
        handler.stop()
        await supervisor.close()
    assert [e for e in logs if e["log_level"] == "error"] == []


async def test_events_after_stop_are_ignored() -> None:
    """Model, server, replica, report and timer events after stop() start no work and raise nothing."""
    supervisor = TaskSupervisor("scheduler")
    handler = Scheduler(
        Agents(),
        StubbornOutputs(),
        KeyedWorkers(supervisor, "model"),
        heartbeat_timeout=60,
        server_outputs=ServerOutputs(),
    )
    handler.start()
    handler.stop()
    await supervisor.close()

    handler.model_changed("iris", iris())
    handler.server_changed("mlserver", ServerRecord("mlserver", 1, "mlserver"))
    handler.replica_changed("mlserver.0", replica(0))
    handler.report(AgentReport("mlserver", 0, "i", "iris", 1, "loaded"))
    handler.retry()
    handler.check_heartbeats()
    assert supervisor.running == 0
