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
  so two models never book the same memory (capacity.py: reserved until Loaded, then loaded).
- Placement tries, in order: every desired replica avoiding replicas where this version failed
  to load; every desired replica anywhere; then, with minReplicas > 0, as many replicas as can be
  had down to minReplicas ("partial scheduling"; the shortfall becomes a server scale-up
  request). A version never spans servers: moving to another server makes a new version, loaded
  before the old one is unloaded. Replicas that drain keep serving (state Draining) until the
  version's replicas elsewhere are Available.
- Retries: models that failed or are under-replicated are retried at once on every capacity
  change (replica registered or gone, server changed, a model unloaded somewhere) and
  periodically with a per-model exponential backoff (backoff.py).
- Placement reads the server views and replica bookings from ``ClusterViews`` (views.py): every
  change of a model's record is reported to it (``record_changed``), and it re-books that model
  and rebuilds only the views it touched, so a decision costs O(servers), not O(all models).
- After model work, one coalesced work item (key ``@servers``, which no model name can be)
  publishes each server's booked memory and its pending scale request.
- Transport is behind protocols (``AgentClient``, ``PlacementOutputs``, ``ServerOutputs``); the
  NATS adapters live in nats_adapters.py.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Protocol

import structlog

from modelplane.libs import states
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.resources.types import Model, ModelSpec
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion
from modelplane.libs.tasks import KeyedWorkers
from modelplane.services.scheduler import capacity
from modelplane.services.scheduler.backoff import Backoff
from modelplane.services.scheduler.cluster import ReplicaRecord, ServerRecord, ServerView
from modelplane.services.scheduler.placement import (
    Decision,
    Placed,
    PlacementPolicy,
    Unplaceable,
    default_policy,
    place,
)
from modelplane.services.scheduler.policy.base import PlacementRequest
from modelplane.services.scheduler.records import (
    AgentReport,
    Assignment,
    CommandResult,
    ModelRecord,
    ScaleRequest,
    ServerLimits,
    ServerUsage,
    VersionRecord,
    server_model_name,
)
from modelplane.services.scheduler.views import ClusterViews

log = structlog.get_logger(__name__)

# Assignments that count as "the version is allocated here".
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
# Replica states a route sends traffic to (a draining replica serves until it is replaced).
_ROUTED = frozenset({states.AVAILABLE, states.DRAINING})
# Key of the servers' work item on the model workers; model names cannot start with "@".
_SERVERS_KEY = "@servers"


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


class ServerOutputs(Protocol):
    """Where the scheduler publishes per-server facts (KV_SERVER_STATES, KV_SCALE_REQUESTS)."""

    async def save_usage(self, usage: ServerUsage) -> None:
        """Store a server's booked memory per replica."""

    async def remove_usage(self, server: str) -> None:
        """Forget a server's booked memory (the server and its replicas are gone)."""

    async def request_scale(self, request: ScaleRequest) -> None:
        """Store the pending scale request and announce it."""

    async def clear_scale(self, server: str) -> None:
        """Delete the pending scale request (it is satisfied or moot) and announce it."""


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
        server_outputs: ServerOutputs | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._agents = agents
        self._outputs = outputs
        self._server_outputs = server_outputs
        self._workers = workers
        self._heartbeat_timeout = heartbeat_timeout
        self.policy = policy or default_policy()
        self._clock = clock
        self._backoff = backoff or Backoff(1.0, 60.0)
        self.models: dict[str, Model] = {}
        self.servers: dict[str, ServerRecord] = {}
        self.server_limits: dict[str, ServerLimits] = {}
        # ServerConfig name -> parallel workers (the only part placement needs).
        self.server_configs: dict[str, int] = {}
        self.replicas: dict[str, ReplicaRecord] = {}
        self.placements: dict[str, ModelRecord] = {}
        # What the server outputs hold (read at start, then what we wrote).
        self.scale_requests: dict[str, ScaleRequest] = {}
        self._usage_written: dict[str, ServerUsage] = {}
        self._empty = capacity.EmptyReplicas()
        # Server views and replica bookings, updated as the tables above change (views.py).
        self._cluster = ClusterViews(self.servers, self.replicas, self.placements, self._parallel_workers)
        self._ready = False
        # Set by stop(): the term is ending, new events are ignored (no work may start).
        self._stopped = False

    # ---- start-up ---------------------------------------------------------------------------
    def restore(self, records: list[ModelRecord]) -> None:
        """Take the placements persisted by a previous run (before ``start``)."""
        for record in records:
            self.placements[record.name] = record
            self._cluster.record_changed(record.name)

    def restore_scale_requests(self, requests: list[ScaleRequest]) -> None:
        """Take the scale requests a previous run left pending (cleared if no longer needed)."""
        for request in requests:
            self.scale_requests[request.server] = request

    def start(self) -> None:
        """The tables are caught up with KV: reconcile every known model once."""
        self._ready = True
        now = self._clock()
        for replica in self.replicas.values():
            replica.last_seen = now
        for name in sorted(set(self.models) | set(self.placements)):
            self._submit(name)
        self._servers_changed()

    def stop(self) -> None:
        """The term is ending: ignore every event from now on (call before closing the workers).

        Watches, subscriptions and work items that are still running (a cancelled NATS request
        can return normally) may deliver events after this; they are dropped instead of
        submitting work to a supervisor that is closing.
        """
        self._stopped = True

    # ---- desired state ----------------------------------------------------------------------
    def model_changed(self, name: str, model: Model | None) -> None:
        if model is None:
            self.models.pop(name, None)
        else:
            self.models[name] = model
        self._backoff.reset(name)
        self._submit(name)

    def server_changed(
        self, name: str, server: ServerRecord | None, limits: ServerLimits | None = None
    ) -> None:
        workers = self._parallel_workers(name)
        if server is None:
            self.servers.pop(name, None)
            self.server_limits.pop(name, None)
        else:
            self.servers[name] = server
            self.server_limits[name] = limits or ServerLimits()
        self._cluster.server_changed(name)
        if self._parallel_workers(name) != workers:
            self._cluster.workers_changed(name)
        if self._ready:
            # Models on a server scaled to 0 or deleted move elsewhere.
            for model in self._cluster.models_on_server(name):
                self._submit(model)
        self._capacity_changed()

    def server_config_changed(self, name: str, parallel_workers: int | None) -> None:
        before = self.server_configs.get(name)
        if parallel_workers is None:
            self.server_configs.pop(name, None)
        else:
            self.server_configs[name] = parallel_workers
        if self.server_configs.get(name) != before:
            for server in self.servers.values():
                if server.server_config == name:
                    self._cluster.workers_changed(server.name)
        self._capacity_changed()

    # ---- replicas ---------------------------------------------------------------------------
    def replica_changed(self, key: str, info: ReplicaRecord | None) -> None:
        old = self.replicas.get(key)
        if info is None:
            if old is not None:
                del self.replicas[key]
                self._cluster.replica_changed(key, old, None)
                log.info("replica_removed", replica=key)
                self._replica_gone(key)
            return
        info.last_seen = self._clock()
        self.replicas[key] = info
        self._cluster.replica_changed(key, old, info)
        if not self._ready:
            # Start-up replay: persisted assignments are trusted, start() reconciles them.
            return
        if old is None or old.incarnation != info.incarnation or old.lost:
            log.info("replica_registered", replica=key, incarnation=info.incarnation)
            for name in self._cluster.models_on_replica(key):
                self._enqueue(name, partial(self._replica_restarted, name, key, info.incarnation))
            self._capacity_changed()
            return
        for name in self._cluster.models_on_replica(key):
            self._submit(name)
        if _capacity_of(old) != _capacity_of(info):
            if old.draining != info.draining:
                log.info("replica_draining" if info.draining else "replica_undrained", replica=key)
            self._capacity_changed()

    def heartbeat(self, server: str, index: int, incarnation: str) -> None:
        replica = self.replicas.get(f"{server}.{index}")
        if replica is None or replica.incarnation != incarnation:
            return
        replica.last_seen = self._clock()
        if replica.lost:
            replica.lost = False
            self._cluster.server_changed(replica.server)
            log.info("replica_heartbeat_resumed", replica=replica.key)
            self._capacity_changed()

    def check_heartbeats(self) -> None:
        """Treat replicas silent for longer than the heartbeat timeout as gone."""
        now = self._clock()
        for replica in list(self.replicas.values()):
            if not replica.lost and now - replica.last_seen > self._heartbeat_timeout:
                replica.lost = True
                self._cluster.server_changed(replica.server)
                log.warning("replica_lost", replica=replica.key, silent_for=round(now - replica.last_seen, 1))
                self._replica_gone(replica.key)

    def _replica_gone(self, key: str) -> None:
        if self._ready:
            for name in self._cluster.models_on_replica(key):
                self._submit(name)
        self._capacity_changed()

    # ---- agent reports ----------------------------------------------------------------------
    def report(self, report: AgentReport) -> None:
        self._enqueue(report.model, partial(self._apply_report, report))

    # ---- retries ----------------------------------------------------------------------------
    def retry(self) -> None:
        """Periodic tick: models needing a retry whose backoff has expired are retried."""
        now = self._clock()
        for name in sorted(set(self.models) | set(self.placements)):
            if not self._needs_retry(name):
                self._backoff.reset(name)
            elif self._workers.pending(name) == 0 and self._backoff.due(name, now):
                log.info("model_retry", model=name, next_in=self._backoff.delay(name))
                self._submit(name, retry_failed=True)

    def _capacity_changed(self) -> None:
        """Capacity appeared or moved: failed and under-replicated models are retried at once."""
        if not self._ready:
            return
        for name in sorted(self.models):
            if self._needs_retry(name) and self._workers.pending(name) == 0:
                self._submit(name)
        self._servers_changed()

    def _needs_retry(self, name: str) -> bool:
        record = self.placements.get(name)
        model = self.models.get(name)
        if record is None or model is None:
            return record is not None or model is not None
        latest = record.latest
        if latest is None or latest.schedule_failed or latest.missing > 0:
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
        self._enqueue(name, partial(self._reconcile, name, retry_failed=retry_failed))

    def _enqueue(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        if self._stopped:
            # The term is ending: its workers are (being) closed and the next leader reconciles
            # from KV, so the event is dropped rather than started on a closed supervisor.
            log.debug("event_ignored_after_stop", key=key)
            return
        self._workers.submit(key, work)

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
        self._cluster.record_changed(name)
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
        freed = False
        if outcome == "loading" and a.state == states.LOAD_REQUESTED:
            _set_state(a, states.LOADING, "")
        elif outcome == "loaded" and a.state in (states.LOAD_REQUESTED, states.LOADING, states.LOADED):
            _set_state(a, states.DRAINING if replica.draining else states.AVAILABLE, "")
            version.failures.pop(key, None)
        elif outcome == "load_failed" and a.state in _ALLOCATED:
            _set_state(a, states.LOAD_FAILED, report.message or "load failed")
            version.failures[key] = version.failures.get(key, 0) + 1
            log.warning(
                "load_failed", model=report.model, version=report.version, replica=key, reason=a.reason
            )
        elif outcome == "unloaded" and (
            a.state in states.UNLOADING_STATES or a.state == states.UNLOAD_FAILED
        ):
            version.replicas.remove(a)
            freed = True
        elif outcome == "unload_failed":
            _set_state(a, states.UNLOAD_FAILED, report.message or "unload failed")
        else:
            return
        self._cluster.record_changed(report.model)
        await self._reconcile(report.model)
        if freed:
            # A model unloaded somewhere: memory came free for the models still waiting.
            self._capacity_changed()

    async def _reconcile(self, name: str, *, retry_failed: bool = False) -> None:
        model = self.models.get(name)
        record = self.placements.get(name)
        if model is None and record is None:
            return
        if record is None:
            record = ModelRecord(name)
            self.placements[name] = record
        # Everything up to the first await changes the record; placement reads it re-booked.
        self._cluster.record_changed(name)
        self._drop_gone_replicas(record)

        if model is None:
            record.deleted = True
            for version in record.versions:
                self._unload_all(version)
        else:
            record.deleted = False
            record.generation = model.meta.generation
            self._update_versions(record, model)
            if retry_failed:
                _retry_failed_unloads(record)
            self._mark_already_loaded(name, record)
            self._place_latest(name, record, retry_failed=retry_failed)
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
        # The decision above changed the record: re-book it before another model decides.
        self._cluster.record_changed(name)
        if not record.versions:
            del self.placements[name]
            await self._outputs.remove(name)
            log.info("model_removed", model=name)
            self._servers_changed()
            return
        await self._outputs.save(record, self._route(record))
        if await self._send_commands(name, record):
            await self._outputs.save(record, self._route(record))
        self._servers_changed()

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

    def _mark_draining(self, version: VersionRecord) -> None:
        """Loaded replicas on draining replicas become Draining (and back if the drain stops)."""
        for a in version.replicas:
            replica = self.replicas.get(a.replica_key)
            draining = replica is not None and replica.draining
            if draining and a.state in (states.AVAILABLE, states.LOADED):
                _set_state(a, states.DRAINING, "replica is draining")
            elif not draining and a.state == states.DRAINING:
                _set_state(a, states.AVAILABLE, "")

    def _place_latest(self, name: str, record: ModelRecord, *, retry_failed: bool) -> None:
        latest = record.latest
        assert latest is not None
        self._mark_draining(latest)
        allocated = [a for a in latest.replicas if a.state in _ALLOCATED]
        if latest.spec.replicas <= 0:
            for a in allocated:
                _request_unload(a)
            latest.schedule_failed, latest.reason, latest.missing = False, "", 0
            return
        views = self._server_views()
        open_servers = {v.name for v in views if v.exists and v.expected_replicas > 0}
        # The version stays on the server of its live replicas, unless that server is going away.
        staying = [
            a
            for a in allocated
            if a.state not in (states.LOAD_FAILED, states.DRAINING) and a.server in open_servers
        ]
        request = PlacementRequest(
            model=name,
            version=latest.version,
            spec=latest.spec,
            current_server=staying[0].server if staying else "",
        )
        decision, missing, why_missing = self._decide(request, views, latest)
        if not isinstance(decision, Placed):
            latest.schedule_failed, latest.reason, latest.missing = True, decision.reason, 0
            log.info("schedule_failed", model=name, version=latest.version, reason=decision.reason)
            if retry_failed:
                # Nowhere better to go: try the same replicas again.
                for a in allocated:
                    if a.state == states.LOAD_FAILED:
                        _retry_load(a)
            return
        target = latest
        if latest.server and decision.server != latest.server:
            # A version lives on one server: moving makes a new version, loaded before the old
            # one (still serving where it can) is unloaded.
            target = VersionRecord(version=latest.version + 1, spec=latest.spec)
            record.versions.append(target)
            log.info(
                "model_version_created",
                model=name,
                version=target.version,
                reason=f"moving from server {latest.server} to {decision.server}",
            )
        else:
            chosen = set(decision.indexes)
            for a in allocated:
                if a.state != states.DRAINING and (a.server != decision.server or a.index not in chosen):
                    _request_unload(a)
        if missing and missing != target.missing:
            log.info("partially_scheduled", model=name, version=target.version, missing=missing)
        target.server = decision.server
        target.schedule_failed, target.missing = False, missing
        target.reason = why_missing
        for index in decision.indexes:
            existing = target.assignment(decision.server, index)
            if existing is None:
                target.replicas.append(
                    Assignment(decision.server, index, states.LOAD_REQUESTED, updated_at=now_rfc3339())
                )
            elif existing.state == states.LOAD_FAILED:
                if retry_failed:
                    _retry_load(existing)
            elif existing.state not in _ALLOCATED:
                existing.command_sent = False
                _set_state(existing, states.LOAD_REQUESTED, "")
        # Draining replicas go once the replicas that replace them are Available.
        chosen_states = [
            a.state for a in target.replicas if a.server == decision.server and a.index in decision.indexes
        ]
        if all(s == states.AVAILABLE for s in chosen_states):
            for a in target.replicas:
                if a.state == states.DRAINING:
                    _request_unload(a)

    def _decide(
        self, request: PlacementRequest, views: Sequence[ServerView], version: VersionRecord
    ) -> tuple[Decision, int, str]:
        """The placement, how many desired replicas it lacks, and why (partial scheduling).

        Every desired replica avoiding the replicas where this version failed to load, then
        anywhere; only then fewer (down to minReplicas): as many as possible, avoiding failures
        when that costs no replica.
        """
        avoid = {key for key, count in version.failures.items() if count > 0}
        candidates: list[Sequence[ServerView]] = [_without(views, avoid), views] if avoid else [views]
        decision: Decision = Unplaceable("no servers are available")
        for option in candidates:
            decision = place(request, option, self.policy, partial=False)
            if isinstance(decision, Placed):
                return decision, 0, ""
        # Partial: the placement missing the fewest replicas wins; avoiding failed replicas only
        # breaks ties, or a replica that failed once (and is retried by the backoff) would keep
        # the model short forever.
        best: Placed | None = None
        for option in candidates:
            decision = place(request, option, self.policy)
            if isinstance(decision, Placed) and (best is None or decision.missing < best.missing):
                best = decision
        if best is None:
            return decision, 0, ""
        if not best.missing:
            return best, 0, ""
        return best, best.missing, f"{best.missing} of {request.desired} replicas missing: {best.shortfall}"

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
                        version.failures[a.replica_key] = version.failures.get(a.replica_key, 0) + 1
                        self._cluster.record_changed(name)
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
                        self._cluster.record_changed(name)
                        changed = True
                    else:
                        _set_state(a, states.UNLOAD_FAILED, result.reason)
                        self._cluster.record_changed(name)
                        changed = True
        return changed

    # ---- per-server outputs (one coalesced work item) ---------------------------------------
    def _servers_changed(self) -> None:
        if self._ready and self._server_outputs is not None and self._workers.pending(_SERVERS_KEY) == 0:
            self._enqueue(_SERVERS_KEY, self._publish_servers)

    async def _publish_servers(self) -> None:
        outputs = self._server_outputs
        assert outputs is not None
        booked = self._cluster.booked
        live = [r for r in self.replicas.values() if not r.lost]
        self._empty.update(live, booked)
        by_server: dict[str, list[ReplicaRecord]] = {}
        for replica in live:
            by_server.setdefault(replica.server, []).append(replica)
        # Every usage from one moment's bookings (they change while the writes below await).
        usages = {
            server: capacity.server_usage(server, by_server.get(server, []), booked)
            for server in set(self.servers) | set(by_server)
        }

        for server in sorted(usages.keys() | self._usage_written.keys()):
            usage = usages.get(server)
            if usage is None:
                await outputs.remove_usage(server)
                del self._usage_written[server]
            elif self._usage_written.get(server) != usage:
                await outputs.save_usage(usage)
                self._usage_written[server] = usage

        # One pass over the models: desired replicas and shortfalls per server.
        desired: dict[str, list[int]] = {}
        shortfalls: dict[str, list[capacity.Shortfall]] = {}
        for name, placement in self.placements.items():
            latest = placement.latest
            if latest is None or placement.deleted or not latest.server:
                continue
            desired.setdefault(latest.server, []).append(latest.spec.replicas)
            short = capacity.shortfall(name, latest)
            if short is not None:
                shortfalls.setdefault(latest.server, []).append(short)
        now = now_rfc3339()
        for server in sorted(set(self.servers) | set(self.scale_requests)):
            record = self.servers.get(server)
            wanted = (
                capacity.scale_request(
                    record,
                    self.server_limits.get(server, ServerLimits()),
                    desired.get(server, []),
                    shortfalls.get(server, []),
                    self._empty.count(server),
                    now,
                )
                if record is not None
                else None
            )
            pending = self.scale_requests.get(server)
            if wanted is None:
                if pending is not None:
                    await outputs.clear_scale(server)
                    del self.scale_requests[server]
                    log.info("server_scale_request_cleared", server=server)
            elif not wanted.same_request(pending):
                await outputs.request_scale(wanted)
                self.scale_requests[server] = wanted
                log.info(
                    "server_scale_requested",
                    server=server,
                    direction=wanted.direction,
                    current=wanted.current_replicas,
                    target=wanted.target_replicas,
                    reason=wanted.reason,
                )

    # ---- views ------------------------------------------------------------------------------
    def _server_views(self) -> Sequence[ServerView]:
        return self._cluster.views()

    def _parallel_workers(self, server_name: str) -> int:
        server = self.servers.get(server_name)
        return self.server_configs.get(server.server_config, 0) if server else 0

    def _route(self, record: ModelRecord) -> Route:
        versions: list[RouteVersion] = []
        for version in sorted(record.versions, key=lambda v: v.version, reverse=True):
            endpoints: list[RouteEndpoint] = []
            for a in sorted(version.replicas, key=lambda a: (a.server, a.index)):
                replica = self.replicas.get(a.replica_key)
                if a.state in _ROUTED and replica is not None and not replica.lost:
                    endpoints.append(
                        RouteEndpoint(a.server, a.index, replica.http_endpoint, replica.grpc_endpoint)
                    )
            if endpoints:
                versions.append(
                    RouteVersion(
                        version.version, server_model_name(record.name, version.version), tuple(endpoints)
                    )
                )
        # The latest version's spec follows the Model's (routing-only fields make no new version).
        latest = record.latest
        if latest is None:
            return Route(record.name, tuple(versions))
        return Route(record.name, tuple(versions), latest.spec.load_balancing, latest.spec.timeout_seconds)


def _capacity_of(replica: ReplicaRecord) -> tuple[object, ...]:
    """The fields of a replica that decide what it can take."""
    return (
        replica.memory_bytes,
        replica.overcommit_percent,
        replica.capabilities,
        replica.draining,
        replica.unavailable_reason,
    )


def _without(views: Sequence[ServerView], keys: set[str]) -> list[ServerView]:
    """``views`` minus the replicas named in ``keys`` (untouched views keep their summaries)."""
    return [
        replace(v, replicas=tuple(r for r in v.replicas if r.key not in keys))
        if any(r.key in keys for r in v.replicas)
        else v
        for v in views
    ]


def _set_state(a: Assignment, state: int, reason: str) -> None:
    if a.state != state or a.reason != reason:
        a.state = state
        a.reason = reason
        a.updated_at = now_rfc3339()


def _request_unload(a: Assignment) -> None:
    a.command_sent = False
    _set_state(a, states.UNLOAD_REQUESTED, "")


def _retry_load(a: Assignment) -> None:
    a.command_sent = False
    _set_state(a, states.LOAD_REQUESTED, "retrying after: " + a.reason if a.reason else "")


def _retry_failed_unloads(record: ModelRecord) -> None:
    for version in record.versions:
        for a in version.replicas:
            if a.state == states.UNLOAD_FAILED:
                _request_unload(a)
