"""The scheduler's logic: desired models + live replicas -> placements, commands and routes.

Design:
- Event methods (``model_changed``, ``replica_changed``, ``report``, ``heartbeat`` ...) are
  synchronous: they update the cluster tables and submit per-model work to ``KeyedWorkers``
  (key = model name). Only that work mutates a model's ``ModelRecord``, so the work for one
  model is strictly ordered while different models proceed in parallel.
- ``_reconcile`` is idempotent: it brings one model's record towards its desired spec (new
  version on a spec change, placement of the latest version, unloading superseded versions once
  the latest is available, unloading everything of a deleted model), persists the route and the
  placement (route first, so traffic never goes to a replica that is being unloaded and an
  Available replica is routed before anyone reads it as Available), then sends the pending
  commands. Placement decision and memory reservation happen without an ``await`` in between,
  so two models never book the same memory.
- Transport is behind two protocols, ``AgentClient`` and ``PlacementOutputs``; the NATS
  adapters live in nats_adapters.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Protocol

import structlog

from modelplane.libs import states
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.resources.types import Model, ModelSpec
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion
from modelplane.libs.tasks import KeyedWorkers
from modelplane.services.scheduler.cluster import ReplicaRecord, ReplicaView, ServerRecord, ServerView
from modelplane.services.scheduler.placement import Placed, PlacementPolicy, default_policy, place
from modelplane.services.scheduler.policy.base import PlacementRequest
from modelplane.services.scheduler.records import (
    AgentReport,
    Assignment,
    CommandResult,
    ModelRecord,
    VersionRecord,
    required_bytes,
    server_model_name,
)

log = structlog.get_logger(__name__)

# Assignments that count as "the version is allocated here" (they keep their memory booked).
_ALLOCATED = frozenset(
    {
        states.LOAD_REQUESTED,
        states.LOADING,
        states.LOADED,
        states.AVAILABLE,
        states.LOAD_FAILED,
        states.LOADED_UNAVAILABLE,
        states.DRAINING,
    }
)


class AgentClient(Protocol):
    """Sends commands to the placement agent of one replica."""

    async def load(self, server: str, index: int, model: str, version: int, spec: ModelSpec) -> CommandResult:
        """Ask the agent to load a model version; the outcome comes later as a report."""

    async def unload(self, server: str, index: int, model: str, version: int) -> CommandResult:
        """Ask the agent to unload a model version."""


class PlacementOutputs(Protocol):
    """Where the scheduler publishes its decisions (KV_PLACEMENTS and KV_ROUTES)."""

    async def save(self, record: ModelRecord, route: Route) -> None:
        """Write the route, then the placement (skipping writes that change nothing)."""

    async def remove(self, model: str) -> None:
        """Delete the model's placement and route."""


class Scheduler:
    """Holds the cluster view and the model records; the single writer of placements and routes."""

    def __init__(
        self,
        agents: AgentClient,
        outputs: PlacementOutputs,
        workers: KeyedWorkers,
        *,
        heartbeat_timeout: float,
        policy: PlacementPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._agents = agents
        self._outputs = outputs
        self._workers = workers
        self._heartbeat_timeout = heartbeat_timeout
        self.policy = policy or default_policy()
        self._clock = clock
        self.models: dict[str, Model] = {}
        self.servers: dict[str, ServerRecord] = {}
        # ServerConfig name -> parallel workers (the only part placement needs).
        self.server_configs: dict[str, int] = {}
        self.replicas: dict[str, ReplicaRecord] = {}
        self.placements: dict[str, ModelRecord] = {}
        self._ready = False

    # ---- start-up ---------------------------------------------------------------------------
    def restore(self, records: list[ModelRecord]) -> None:
        """Take the placements persisted by a previous run (before ``start``)."""
        for record in records:
            self.placements[record.name] = record

    def start(self) -> None:
        """The tables are caught up with KV: reconcile every known model once."""
        self._ready = True
        now = self._clock()
        for replica in self.replicas.values():
            replica.last_seen = now
        for name in sorted(set(self.models) | set(self.placements)):
            self._submit(name)

    # ---- desired state ----------------------------------------------------------------------
    def model_changed(self, name: str, model: Model | None) -> None:
        if model is None:
            self.models.pop(name, None)
        else:
            self.models[name] = model
        self._submit(name)

    def server_changed(self, name: str, server: ServerRecord | None) -> None:
        if server is None:
            self.servers.pop(name, None)
        else:
            self.servers[name] = server
        self._capacity_changed()

    def server_config_changed(self, name: str, parallel_workers: int | None) -> None:
        if parallel_workers is None:
            self.server_configs.pop(name, None)
        else:
            self.server_configs[name] = parallel_workers
        self._capacity_changed()

    # ---- replicas ---------------------------------------------------------------------------
    def replica_changed(self, key: str, info: ReplicaRecord | None) -> None:
        old = self.replicas.get(key)
        if info is None:
            if old is not None:
                del self.replicas[key]
                log.info("replica_removed", replica=key)
                self._replica_gone(key)
            return
        info.last_seen = self._clock()
        self.replicas[key] = info
        if not self._ready:
            # Start-up replay: persisted assignments are trusted, start() reconciles them.
            return
        if old is None or old.incarnation != info.incarnation or old.lost:
            log.info("replica_registered", replica=key, incarnation=info.incarnation)
            for name in self._models_on(key):
                self._workers.submit(name, partial(self._replica_restarted, name, key, info.incarnation))
        else:
            for name in self._models_on(key):
                self._submit(name)
        self._capacity_changed()

    def heartbeat(self, server: str, index: int, incarnation: str) -> None:
        replica = self.replicas.get(f"{server}.{index}")
        if replica is None or replica.incarnation != incarnation:
            return
        replica.last_seen = self._clock()
        if replica.lost:
            replica.lost = False
            log.info("replica_heartbeat_resumed", replica=replica.key)
            self._capacity_changed()

    def check_heartbeats(self) -> None:
        """Treat replicas silent for longer than the heartbeat timeout as gone."""
        now = self._clock()
        for replica in list(self.replicas.values()):
            if not replica.lost and now - replica.last_seen > self._heartbeat_timeout:
                replica.lost = True
                log.warning("replica_lost", replica=replica.key, silent_for=round(now - replica.last_seen, 1))
                self._replica_gone(replica.key)

    def _replica_gone(self, key: str) -> None:
        for name in self._models_on(key):
            self._submit(name)
        self._capacity_changed()

    # ---- agent reports ----------------------------------------------------------------------
    def report(self, report: AgentReport) -> None:
        self._workers.submit(report.model, partial(self._apply_report, report))

    # ---- retries ----------------------------------------------------------------------------
    def retry(self) -> None:
        """Periodic retry: failed loads/unloads are re-sent, unplaced versions placed again."""
        for name in sorted(set(self.models) | set(self.placements)):
            if self._needs_retry(name) and self._workers.pending(name) == 0:
                self._submit(name, retry_failed=True)

    def _capacity_changed(self) -> None:
        if not self._ready:
            return
        for name in sorted(self.models):
            if self._needs_retry(name) and self._workers.pending(name) == 0:
                self._submit(name)

    def _needs_retry(self, name: str) -> bool:
        record = self.placements.get(name)
        model = self.models.get(name)
        if record is None or model is None:
            return record is not None or model is not None
        latest = record.latest
        if latest is None or latest.schedule_failed:
            return True
        allocated = [a for a in latest.replicas if a.state in _ALLOCATED]
        if len(allocated) != model.spec.replicas:
            return True
        return any(
            a.state in (states.LOAD_FAILED, states.UNLOAD_FAILED) for v in record.versions for a in v.replicas
        )

    # ---- per-model work (runs on the model's worker) ----------------------------------------
    def _submit(self, name: str, *, retry_failed: bool = False) -> None:
        if not self._ready:
            return
        self._workers.submit(name, partial(self._reconcile, name, retry_failed=retry_failed))

    async def _replica_restarted(self, name: str, key: str, incarnation: str) -> None:
        replica = self.replicas.get(key)
        record = self.placements.get(name)
        if replica is None or record is None or replica.incarnation != incarnation:
            return
        for version in record.versions:
            loaded_name = server_model_name(name, version.version)
            for a in list(version.replicas):
                if a.replica_key != key:
                    continue
                a.command_sent = False
                has_it = loaded_name in replica.loaded_models
                if a.state in states.UNLOADING_STATES or a.state == states.UNLOAD_FAILED:
                    if has_it:
                        _set_state(a, states.UNLOAD_REQUESTED, "")
                    else:
                        version.replicas.remove(a)
                elif a.state in _ALLOCATED:
                    if has_it:
                        _set_state(a, states.AVAILABLE, "")
                    else:
                        _set_state(a, states.LOAD_REQUESTED, "replica restarted")
        await self._reconcile(name)

    async def _apply_report(self, report: AgentReport) -> None:
        key = f"{report.server}.{report.index}"
        replica = self.replicas.get(key)
        record = self.placements.get(report.model)
        if replica is None or replica.incarnation != report.incarnation:
            log.info("report_ignored_stale_incarnation", replica=key, model=report.model)
            return
        version = record.version(report.version) if record else None
        a = version.assignment(report.server, report.index) if version else None
        if version is None or a is None:
            log.info("report_ignored_unassigned", replica=key, model=report.model, version=report.version)
            return
        outcome = report.outcome
        if outcome == "loading" and a.state == states.LOAD_REQUESTED:
            _set_state(a, states.LOADING, "")
        elif outcome == "loaded" and a.state in (states.LOAD_REQUESTED, states.LOADING, states.LOADED):
            _set_state(a, states.AVAILABLE, "")
        elif outcome == "load_failed" and a.state in _ALLOCATED:
            _set_state(a, states.LOAD_FAILED, report.message or "load failed")
        elif outcome == "unloaded" and (
            a.state in states.UNLOADING_STATES or a.state == states.UNLOAD_FAILED
        ):
            version.replicas.remove(a)
        elif outcome == "unload_failed":
            _set_state(a, states.UNLOAD_FAILED, report.message or "unload failed")
        else:
            return
        await self._reconcile(report.model)

    async def _reconcile(self, name: str, *, retry_failed: bool = False) -> None:
        model = self.models.get(name)
        record = self.placements.get(name)
        if model is None and record is None:
            return
        if record is None:
            record = ModelRecord(name)
            self.placements[name] = record
        self._drop_gone_replicas(record)

        if model is None:
            record.deleted = True
            for version in record.versions:
                self._unload_all(version)
        else:
            record.deleted = False
            record.generation = model.meta.generation
            self._update_versions(record, model)
            latest = record.latest
            assert latest is not None
            if retry_failed:
                _retry_failed(record)
            self._mark_already_loaded(name, record)
            self._place_latest(name, latest)
            if self._latest_state(record, model) in (states.MODEL_AVAILABLE, states.MODEL_SCALED_DOWN):
                for old in record.versions[:-1]:
                    self._unload_all(old)

        # Forget versions with nothing left (never the latest of a live model).
        keep_latest = model is not None
        record.versions = [
            v
            for i, v in enumerate(record.versions)
            if v.replicas or (keep_latest and i == len(record.versions) - 1)
        ]
        if not record.versions:
            del self.placements[name]
            await self._outputs.remove(name)
            log.info("model_removed", model=name)
            return
        await self._outputs.save(record, self._route(record))
        if await self._send_commands(name, record):
            await self._outputs.save(record, self._route(record))

    def _update_versions(self, record: ModelRecord, model: Model) -> None:
        latest = record.latest
        if latest is None or not latest.spec.same_version_as(model.spec):
            number = latest.version + 1 if latest else 1
            record.versions.append(VersionRecord(version=number, spec=model.spec))
            log.info("model_version_created", model=record.name, version=number)
        else:
            latest.spec = model.spec

    def _drop_gone_replicas(self, record: ModelRecord) -> None:
        for version in record.versions:
            kept: list[Assignment] = []
            for a in version.replicas:
                replica = self.replicas.get(a.replica_key)
                if replica is None or replica.lost:
                    log.info(
                        "assignment_dropped",
                        model=record.name,
                        version=version.version,
                        replica=a.replica_key,
                    )
                    continue
                kept.append(a)
            version.replicas = kept

    def _mark_already_loaded(self, name: str, record: ModelRecord) -> None:
        """After a restart, pending loads the replica already reports loaded become Available."""
        for version in record.versions:
            loaded_name = server_model_name(name, version.version)
            for a in version.replicas:
                replica = self.replicas.get(a.replica_key)
                if (
                    replica is not None
                    and not a.command_sent
                    and a.state in (states.LOAD_REQUESTED, states.LOADING)
                    and loaded_name in replica.loaded_models
                ):
                    _set_state(a, states.AVAILABLE, "")

    def _place_latest(self, name: str, latest: VersionRecord) -> None:
        allocated = [a for a in latest.replicas if a.state in _ALLOCATED]
        if latest.spec.replicas <= 0:
            for a in allocated:
                _request_unload(a)
            latest.schedule_failed, latest.reason = False, ""
            return
        request = PlacementRequest(
            model=name,
            version=latest.version,
            spec=latest.spec,
            current_server=allocated[0].server if allocated else "",
        )
        decision = place(request, self._server_views(), self.policy)
        if not isinstance(decision, Placed):
            latest.schedule_failed, latest.reason = True, decision.reason
            log.info("schedule_failed", model=name, version=latest.version, reason=decision.reason)
            return
        latest.schedule_failed, latest.reason = False, ""
        latest.server = decision.server
        chosen = set(decision.indexes)
        for a in allocated:
            if a.server != decision.server or a.index not in chosen:
                _request_unload(a)
        for index in decision.indexes:
            existing = latest.assignment(decision.server, index)
            if existing is None:
                latest.replicas.append(
                    Assignment(decision.server, index, states.LOAD_REQUESTED, updated_at=now_rfc3339())
                )
            elif existing.state not in _ALLOCATED:
                existing.command_sent = False
                _set_state(existing, states.LOAD_REQUESTED, "")

    def _latest_state(self, record: ModelRecord, model: Model) -> str:
        latest = record.latest
        assert latest is not None
        earlier = any(states.count_available(v.states()) > 0 for v in record.versions[:-1])
        return states.derive_model_state(
            latest.states(),
            replicas=model.spec.replicas,
            min_replicas=model.spec.min_replicas,
            earlier_version_available=earlier,
            schedule_failed=latest.schedule_failed,
        )

    def _unload_all(self, version: VersionRecord) -> None:
        for a in list(version.replicas):
            if a.state in (states.UNLOADED, states.REPLICA_UNKNOWN):
                version.replicas.remove(a)
            elif a.state in _ALLOCATED:
                # LOAD_FAILED included: a half-done load may have left files or memory behind.
                _request_unload(a)

    async def _send_commands(self, name: str, record: ModelRecord) -> bool:
        """Deliver pending loads/unloads; True when a state changed (needs another save)."""
        changed = False
        for version in record.versions:
            for a in list(version.replicas):
                if a.command_sent:
                    continue
                if a.state == states.LOAD_REQUESTED:
                    result = await self._agents.load(a.server, a.index, name, version.version, version.spec)
                    if result.accepted:
                        a.command_sent = True
                    else:
                        _set_state(a, states.LOAD_FAILED, result.reason)
                        changed = True
                        log.warning(
                            "load_not_accepted", model=name, replica=a.replica_key, reason=result.reason
                        )
                elif a.state == states.UNLOAD_REQUESTED:
                    result = await self._agents.unload(a.server, a.index, name, version.version)
                    if result.accepted:
                        a.command_sent = True
                    elif a.replica_key not in self.replicas:
                        version.replicas.remove(a)
                        changed = True
                    else:
                        _set_state(a, states.UNLOAD_FAILED, result.reason)
                        changed = True
        return changed

    # ---- views ------------------------------------------------------------------------------
    def _models_on(self, key: str) -> list[str]:
        return sorted(
            name
            for name, record in self.placements.items()
            if any(a.replica_key == key for v in record.versions for a in v.replicas)
        )

    def _server_views(self) -> list[ServerView]:
        used: dict[str, int] = {}
        assigned: dict[str, set[str]] = {}
        for name, record in self.placements.items():
            for version in record.versions:
                for a in version.replicas:
                    if a.state == states.UNLOADED:
                        continue
                    replica = self.replicas.get(a.replica_key)
                    workers = self._parallel_workers(replica.server) if replica else 0
                    used[a.replica_key] = used.get(a.replica_key, 0) + required_bytes(version.spec, workers)
                    if a.state in _ALLOCATED:
                        assigned.setdefault(a.replica_key, set()).add(
                            server_model_name(name, version.version)
                        )
        by_server: dict[str, list[ReplicaView]] = {}
        for replica in self.replicas.values():
            if replica.lost:
                continue
            by_server.setdefault(replica.server, []).append(
                ReplicaView(
                    server=replica.server,
                    index=replica.index,
                    capabilities=replica.capabilities,
                    memory_bytes=replica.memory_bytes,
                    overcommit_percent=replica.overcommit_percent,
                    used_bytes=used.get(replica.key, 0),
                    draining=replica.draining,
                    unavailable_reason=replica.unavailable_reason,
                    assigned=frozenset(assigned.get(replica.key, set())),
                    parallel_workers=self._parallel_workers(replica.server),
                )
            )
        views: list[ServerView] = []
        for name in sorted(set(self.servers) | set(by_server)):
            server = self.servers.get(name)
            views.append(
                ServerView(
                    name=name,
                    expected_replicas=server.expected_replicas if server else 0,
                    replicas=tuple(sorted(by_server.get(name, []), key=lambda r: r.index)),
                    exists=server is not None,
                )
            )
        return views

    def _parallel_workers(self, server_name: str) -> int:
        server = self.servers.get(server_name)
        return self.server_configs.get(server.server_config, 0) if server else 0

    def _route(self, record: ModelRecord) -> Route:
        versions: list[RouteVersion] = []
        for version in sorted(record.versions, key=lambda v: v.version, reverse=True):
            endpoints: list[RouteEndpoint] = []
            for a in sorted(version.replicas, key=lambda a: (a.server, a.index)):
                replica = self.replicas.get(a.replica_key)
                if a.state == states.AVAILABLE and replica is not None and not replica.lost:
                    endpoints.append(
                        RouteEndpoint(a.server, a.index, replica.http_endpoint, replica.grpc_endpoint)
                    )
            if endpoints:
                versions.append(
                    RouteVersion(
                        version.version, server_model_name(record.name, version.version), tuple(endpoints)
                    )
                )
        return Route(record.name, tuple(versions))


def _set_state(a: Assignment, state: int, reason: str) -> None:
    if a.state != state or a.reason != reason:
        a.state = state
        a.reason = reason
        a.updated_at = now_rfc3339()


def _request_unload(a: Assignment) -> None:
    a.command_sent = False
    _set_state(a, states.UNLOAD_REQUESTED, "")


def _retry_failed(record: ModelRecord) -> None:
    latest = record.latest
    for version in record.versions:
        for a in version.replicas:
            if a.state == states.LOAD_FAILED and version is latest:
                a.command_sent = False
                _set_state(a, states.LOAD_REQUESTED, "retrying after: " + a.reason if a.reason else "")
            elif a.state == states.UNLOAD_FAILED:
                _request_unload(a)
