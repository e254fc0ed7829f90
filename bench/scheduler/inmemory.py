"""In-memory placement: N models onto S servers x R replicas, booking memory as the scheduler does.

Every decision is the real ``place()`` with the default policy over the scheduler's own
``ClusterViews`` (views.py). After a placement, the model's record gets a LoadRequested
assignment on each chosen replica, exactly as the handler writes it, and the views re-book that
model and refresh that one server on the next read (the other servers keep their cached
summaries). Only the network is left out.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

from bench.scheduler.workload import plan_models, plan_servers
from modelplane.libs import states
from modelplane.libs.gc_tuning import tune_for_large_heap
from modelplane.services.scheduler.cluster import ReplicaRecord, ServerRecord
from modelplane.services.scheduler.placement import Placed, default_policy, place
from modelplane.services.scheduler.policy.base import PlacementRequest
from modelplane.services.scheduler.records import Assignment, ModelRecord, VersionRecord
from modelplane.services.scheduler.settings import SchedulerSettings
from modelplane.services.scheduler.views import ClusterViews


@dataclass(frozen=True, slots=True)
class InMemoryResult:
    models: int
    servers: int
    replicas_per_server: int
    strategy: str
    full: int
    partial: int
    failed: int
    total_seconds: float
    # Per-decision times in seconds, sorted.
    decisions: list[float]
    # Of total_seconds: time in Python's cyclic garbage collector (it grows with the heap).
    gc_seconds: float = 0.0

    def percentile(self, p: float) -> float:
        return self.decisions[min(len(self.decisions) - 1, int(p * len(self.decisions)))]


@dataclass(slots=True)
class Cluster:
    """The scheduler's tables for the synthetic cluster, and the views derived from them."""

    servers: dict[str, ServerRecord]
    replicas: dict[str, ReplicaRecord]
    placements: dict[str, ModelRecord]
    views: ClusterViews


def build_cluster(servers: int, replicas: int) -> Cluster:
    workers = {kind.prefix: kind.parallel_workers for kind in {p.kind for p in plan_servers(servers)}}
    cluster = Cluster({}, {}, {}, ClusterViews({}, {}, {}, lambda server: 0))
    cluster.views = ClusterViews(
        cluster.servers,
        cluster.replicas,
        cluster.placements,
        # ServerConfig name = the kind's prefix here.
        lambda server: workers[cluster.servers[server].server_config],
    )
    for plan in plan_servers(servers):
        kind = plan.kind
        cluster.servers[plan.name] = ServerRecord(plan.name, replicas, kind.prefix)
        cluster.views.server_changed(plan.name)
        for i in range(replicas):
            replica = ReplicaRecord(
                server=plan.name,
                index=i,
                incarnation="bench",
                capabilities=kind.capabilities,
                memory_bytes=kind.memory_bytes,
                overcommit_percent=kind.overcommit_percent,
                http_endpoint="",
                grpc_endpoint="",
            )
            cluster.replicas[replica.key] = replica
            cluster.views.replica_changed(replica.key, None, replica)
    return cluster


def book(cluster: Cluster, request: PlacementRequest, decision: Placed) -> None:
    """LoadRequested on the chosen replicas, as the handler records it (re-booked on the next read)."""
    assignments = [Assignment(decision.server, i, states.LOAD_REQUESTED) for i in decision.indexes]
    version = VersionRecord(request.version, request.spec, decision.server, assignments)
    cluster.placements[request.model] = ModelRecord(request.model, versions=[version])
    cluster.views.record_changed(request.model)


def run(
    models: int = 10_000,
    servers: int = 100,
    replicas: int = 10,
    strategy: str = "best-fit",
    gc_young_threshold: int = SchedulerSettings.model_fields["gc_young_threshold"].default,
) -> InMemoryResult:
    cluster = build_cluster(servers, replicas)
    requests = [PlacementRequest(name, 1, spec) for name, spec in plan_models(models, plan_servers(servers))]
    policy = default_policy(strategy)
    clock = time.perf_counter
    times: list[float] = []
    full = partial = failed = 0
    cluster.views.views()  # the empty cluster's views, built once before the clock starts
    # The scheduler process's collector settings (its composition root applies them at start):
    # the workload and the empty cluster are set-up, not work, and are frozen out of the
    # collector's sight, so its collections during the run only walk what the run itself built.
    thresholds = gc.get_threshold()
    tune_for_large_heap(gc_young_threshold)
    collecting = _GcTimer()
    gc.callbacks.append(collecting)
    start = clock()
    for request in requests:
        # Booking the previous decision (re-book one model, refresh one server) happens here.
        views = cluster.views.views()
        t0 = clock()
        decision = place(request, views, policy)
        times.append(clock() - t0)
        if isinstance(decision, Placed):
            book(cluster, request, decision)
            if decision.partial:
                partial += 1
            else:
                full += 1
        else:
            failed += 1
    cluster.views.views()  # book the last one too
    total = clock() - start
    gc.callbacks.remove(collecting)
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    times.sort()
    return InMemoryResult(
        models, servers, replicas, strategy, full, partial, failed, total, times, collecting.seconds
    )


class _GcTimer:
    """A ``gc.callbacks`` entry adding up the time spent in collections."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
