"""Keeps the experiment table in step with the ``KV_EXPERIMENTS`` bucket.

Design: as the route watcher (watcher.py): one long-lived task follows a KV watch; the replay of
current keys is bracketed by ``begin_sync``/``end_sync`` on the table, then every change is
applied as it arrives. If the watch breaks, the loop starts a fresh one after a short pause and
requests keep using the last known experiments meanwhile. The api validated every record before
storing it, so records are taken as they are.
"""

from __future__ import annotations

import asyncio

import structlog

from modelplane.libs.resources.convert import experiment_from_pb
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2
from modelplane.services.gateway.experiments import ExperimentTable

log = structlog.get_logger(__name__)


class ExperimentWatcher:
    """Applies every Experiment change to an ExperimentTable, forever (run it as a supervised task)."""

    def __init__(
        self,
        bucket: TypedBucket[resources_pb2.Experiment],
        table: ExperimentTable,
        restart_delay: float = 1.0,
    ) -> None:
        self._bucket = bucket
        self._table = table
        self._restart_delay = restart_delay

    async def run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("experiment_watch_failed", error=repr(exc), restart_in=self._restart_delay)
            # Pause before re-watching so a NATS outage does not become a busy loop.
            await asyncio.sleep(self._restart_delay)

    async def _follow(self) -> None:
        self._table.begin_sync()
        # watch() is an async generator; closing it stops the NATS consumer behind it.
        stream = self._bucket.watch()
        try:
            async for change in stream:
                if change is None:
                    self._table.end_sync()
                    log.info("experiments_synced", experiments=len(self._table))
                elif change.value is None:
                    self._table.delete(change.key)
                    log.info("experiment_deleted", experiment=change.key)
                else:
                    experiment = experiment_from_pb(change.value)
                    self._table.put(experiment)
                    log.info(
                        "experiment_updated",
                        experiment=experiment.meta.name,
                        default=experiment.spec.default,
                        candidates=[c.name for c in experiment.spec.candidates],
                    )
        finally:
            await stream.aclose()
