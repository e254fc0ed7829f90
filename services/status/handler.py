"""The status service's logic: keep the inputs, re-derive a resource's status when they change.

Design: input changes are synchronous table updates followed by a per-status-key work item on
``KeyedWorkers``, so writes for one key are ordered (a model's status depends on two watches,
KV_MODELS and KV_PLACEMENTS, that would otherwise race) while keys proceed in parallel. The work
re-derives from the tables at the time it runs and writes only when the status changed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol, TypeVar

from modelplane.libs import subjects
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.tasks import KeyedWorkers
from modelplane.services.status.derive import model_status, server_status
from modelplane.services.status.types import (
    ModelView,
    PlacementView,
    ReplicaUsageView,
    ReplicaView,
    ScaleRequestView,
    ServerView,
    Status,
)

V = TypeVar("V")


class StatusOutputs(Protocol):
    async def put(self, key: str, status: Status) -> None:
        """Store a resource's status."""

    async def delete(self, key: str) -> None:
        """Remove a resource's status."""


class StatusDeriver:
    def __init__(
        self, outputs: StatusOutputs, workers: KeyedWorkers, clock: Callable[[], str] = now_rfc3339
    ) -> None:
        self._outputs = outputs
        self._workers = workers
        self._clock = clock
        self.models: dict[str, ModelView] = {}
        self.placements: dict[str, PlacementView] = {}
        self.servers: dict[str, ServerView] = {}
        # server -> replica index -> replica
        self.replicas: dict[str, dict[int, ReplicaView]] = {}
        # The scheduler's booked memory per server (replica index -> usage) and scale requests.
        self.usage: dict[str, dict[int, ReplicaUsageView]] = {}
        self.scale_requests: dict[str, ScaleRequestView] = {}
        # What KV_STATUS holds (read at start, then what we wrote).
        self.written: dict[str, Status] = {}
        self._ready = False

    def restore(self, statuses: dict[str, Status]) -> None:
        self.written.update(statuses)

    def start(self) -> None:
        """Inputs are caught up: derive every status once (and drop statuses of gone resources)."""
        self._ready = True
        model_names = set(self.models) | set(self.placements)
        server_names = set(self.servers)
        for status in list(self.written.values()):
            if status.kind == "Model":
                model_names.add(status.name)
            elif status.kind == "Server":
                server_names.add(status.name)
        for name in sorted(model_names):
            self._submit_model(name)
        for name in sorted(server_names):
            self._submit_server(name)

    # ---- inputs -----------------------------------------------------------------------------
    def model_changed(self, name: str, model: ModelView | None) -> None:
        _set(self.models, name, model)
        self._submit_model(name)

    def placement_changed(self, name: str, placement: PlacementView | None) -> None:
        _set(self.placements, name, placement)
        self._submit_model(name)

    def server_changed(self, name: str, server: ServerView | None) -> None:
        _set(self.servers, name, server)
        self._submit_server(name)

    def replica_changed(self, key: str, replica: ReplicaView | None) -> None:
        server, _, index_text = key.rpartition(".")
        if not index_text.isdigit():
            return
        index = int(index_text)
        if replica is None:
            self.replicas.get(server, {}).pop(index, None)
        else:
            self.replicas.setdefault(server, {})[index] = replica
        self._submit_server(server)

    def server_usage_changed(self, name: str, usage: dict[int, ReplicaUsageView] | None) -> None:
        _set(self.usage, name, usage)
        self._submit_server(name)

    def scale_request_changed(self, name: str, request: ScaleRequestView | None) -> None:
        _set(self.scale_requests, name, request)
        self._submit_server(name)

    # ---- derivation -------------------------------------------------------------------------
    def _submit_model(self, name: str) -> None:
        if self._ready:
            key = subjects.status_key("Model", name)
            self._workers.submit(key, partial(self._write_model, name, key))

    def _submit_server(self, name: str) -> None:
        if self._ready:
            key = subjects.status_key("Server", name)
            self._workers.submit(key, partial(self._write_server, name, key))

    async def _write_model(self, name: str, key: str) -> None:
        status = model_status(
            name, self.models.get(name), self.placements.get(name), self.written.get(key), self._clock()
        )
        await self._write(key, status)

    async def _write_server(self, name: str, key: str) -> None:
        replicas = list(self.replicas.get(name, {}).values())
        status = server_status(
            self.servers.get(name),
            replicas,
            self.written.get(key),
            self._clock(),
            usage=self.usage.get(name),
            scale_request=self.scale_requests.get(name),
        )
        await self._write(key, status)

    async def _write(self, key: str, status: Status | None) -> None:
        previous = self.written.get(key)
        if status is None:
            if previous is not None:
                await self._outputs.delete(key)
                del self.written[key]
            return
        if status == previous:
            return
        await self._outputs.put(key, status)
        self.written[key] = status


def _set(table: dict[str, V], key: str, value: V | None) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value
