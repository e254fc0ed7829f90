"""In-memory placement: N models onto S servers x R replicas, booking memory as the handler does.

Every decision is the real ``place()`` with the default policy; after a placement the chosen
replicas reserve the model's memory and record the version (as LoadRequested does), which means
a new ``ServerView`` for that one server (the others keep their cached summaries, as they would
in the scheduler).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.scheduler.workload import plan_models, plan_servers
from modelplane.services.scheduler.cluster import ReplicaView, ServerView
from modelplane.services.scheduler.placement import Placed, default_policy, place
from modelplane.services.scheduler.policy.base import PlacementRequest


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

    def percentile(self, p: float) -> float:
        return self.decisions[min(len(self.decisions) - 1, int(p * len(self.decisions)))]


def build_cluster(servers: int, replicas: int) -> list[ServerView]:
    views = []
    for plan in plan_servers(servers):
        kind = plan.kind
        views.append(
            ServerView(
                plan.name,
                replicas,
                tuple(
                    ReplicaView(
                        server=plan.name,
                        index=i,
                        capabilities=kind.capabilities,
                        memory_bytes=kind.memory_bytes,
                        overcommit_percent=kind.overcommit_percent,
                        parallel_workers=kind.parallel_workers,
                    )
                    for i in range(replicas)
                ),
            )
        )
    return views


def book(view: ServerView, request: PlacementRequest, decision: Placed) -> ServerView:
    """The server after LoadRequested on the chosen replicas: memory reserved, version assigned."""
    # Replicas are built in index order (replicas[i].index == i).
    reserved = {i: request.required_on(view.replicas[i]) for i in decision.indexes}
    return view.with_reserved(request.server_model_name, reserved)


def run(
    models: int = 10_000, servers: int = 100, replicas: int = 10, strategy: str = "best-fit"
) -> InMemoryResult:
    views = build_cluster(servers, replicas)
    position = {v.name: i for i, v in enumerate(views)}
    requests = [PlacementRequest(name, 1, spec) for name, spec in plan_models(models, plan_servers(servers))]
    policy = default_policy(strategy)
    clock = time.perf_counter
    times: list[float] = []
    full = partial = failed = 0
    start = clock()
    for request in requests:
        t0 = clock()
        decision = place(request, views, policy)
        times.append(clock() - t0)
        if isinstance(decision, Placed):
            i = position[decision.server]
            views[i] = book(views[i], request, decision)
            if decision.partial:
                partial += 1
            else:
                full += 1
        else:
            failed += 1
    total = clock() - start
    times.sort()
    return InMemoryResult(models, len(views), replicas, strategy, full, partial, failed, total, times)
