"""The status service's logic: keep the inputs, re-derive a resource's status when they change.

Design: input changes are synchronous table updates followed by a per-status-key work item on
``KeyedWorkers``, so writes for one key are ordered (a model's status depends on two watches,
KV_MODELS and KV_PLACEMENTS, that would otherwise race) while keys proceed in parallel. The work
re-derives from the tables at the time it runs and writes only when the status changed.

Download progress (the storage service's FetchProgress, ~2 per second per download) is kept per
model and version. A phase change (downloading -> done, cached, failed) is written at once; while
a download runs, writes for one model are throttled to one per ``progress_interval``: reports in
between only update the table and a timer (a loop callback, not a task) writes the latest one
when the interval is over, so a fast download never turns into a KV write per chunk.

The autoscaler's record of a model (KV_AUTOSCALER, written when its decision or average
changes) is kept per model and goes through the same path; a status that comes out equal to the
one last written (e.g. the record of a model whose spec no longer autoscales) writes nothing:
``_write`` skips it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from functools import partial
from typing import Protocol, TypeVar

from modelplane.libs import subjects
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.tasks import KeyedWorkers
from modelplane.services.status.derive import model_status, server_status
from modelplane.services.status.types import (
    PHASE_DOWNLOADING,
    AutoscalingView,
    DownloadView,
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
        self,
        outputs: StatusOutputs,
        workers: KeyedWorkers,
        clock: Callable[[], str] = now_rfc3339,
        progress_interval: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._outputs = outputs
        self._workers = workers
        self._clock = clock
        self._interval = progress_interval
        self._monotonic = monotonic
        # model -> version -> the storage service's last report.
        self.downloads: dict[str, dict[int, DownloadView]] = {}
        # Throttling of download writes: when each model's last one was submitted, and the
        # pending trailing write of models whose reports arrived within the interval.
        self._last_progress_write: dict[str, float] = {}
        self._progress_timers: dict[str, asyncio.TimerHandle] = {}
        self.models: dict[str, ModelView] = {}
        self.placements: dict[str, PlacementView] = {}
        self.servers: dict[str, ServerView] = {}
        # server -> replica index -> replica
        self.replicas: dict[str, dict[int, ReplicaView]] = {}
        # The scheduler's booked memory per server (replica index -> usage) and scale requests.
        self.usage: dict[str, dict[int, ReplicaUsageView]] = {}
        self.scale_requests: dict[str, ScaleRequestView] = {}
        # The autoscaler's record per model.
        self.autoscaling: dict[str, AutoscalingView] = {}
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
        self._forget_downloads(name)
        self._submit_model(name)

    def placement_changed(self, name: str, placement: PlacementView | None) -> None:
        _set(self.placements, name, placement)
        self._forget_downloads(name)
        self._submit_model(name)

    def autoscaling_changed(self, name: str, record: AutoscalingView | None) -> None:
        _set(self.autoscaling, name, record)
        self._submit_model(name)

    def download_progressed(self, name: str, download: DownloadView) -> None:
        """A storage progress report for model ``name``: written at once on a phase change,
        otherwise at most once per ``progress_interval`` (reports in between coalesce)."""
        versions = self.downloads.setdefault(name, {})
        before = versions.get(download.version)
        versions[download.version] = download
        now = self._monotonic()
        if download.phase != PHASE_DOWNLOADING or before is None or before.phase != download.phase:
            self._cancel_progress_timer(name)
            self._last_progress_write[name] = now
            self._submit_model(name)
            return
        if name in self._progress_timers:  # the pending write will carry this report
            return
        wait = self._last_progress_write.get(name, -math.inf) + self._interval - now
        if wait <= 0:
            self._last_progress_write[name] = now
            self._submit_model(name)
        else:
            loop = asyncio.get_running_loop()
            self._progress_timers[name] = loop.call_later(wait, self._progress_due, name)

    def _progress_due(self, name: str) -> None:
        self._progress_timers.pop(name, None)
        self._last_progress_write[name] = self._monotonic()
        self._submit_model(name)

    def _cancel_progress_timer(self, name: str) -> None:
        timer = self._progress_timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _forget_downloads(self, name: str) -> None:
        """Drop reports of versions the placement no longer holds (all of a deleted model's)."""
        versions = self.downloads.get(name)
        if versions is None:
            return
        placement = self.placements.get(name)
        if placement is None:
            if name not in self.models:
                self.downloads.pop(name, None)
                self._last_progress_write.pop(name, None)
                self._cancel_progress_timer(name)
            return
        placed = {v.version for v in placement.versions}
        newest = max(placed, default=0)
        for version in list(versions):
            # A report for a version newer than the placement knows may precede its placement.
            if version not in placed and version <= newest:
                del versions[version]

    def close(self) -> None:
        """Cancel pending throttled writes (the workers are closed by their supervisor)."""
        for name in list(self._progress_timers):
            self._cancel_progress_timer(name)

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
            name,
            self.models.get(name),
            self.placements.get(name),
            self.written.get(key),
            self._clock(),
            self.downloads.get(name),
            self.autoscaling.get(name),
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
