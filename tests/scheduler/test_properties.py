"""Placement properties over random clusters and models (hypothesis).

Each example builds a few servers (capabilities, memory, overcommit, draining, reserved memory,
unusable replicas, versions already assigned) and places a sequence of models, booking memory on
the chosen replicas as the handler does (LoadRequested reserves the model's memory).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView, ServerView
from modelplane.services.scheduler.placement import Decision, Placed, PlacementPolicy, default_policy, place
from modelplane.services.scheduler.policy.base import PlacementRequest
from modelplane.services.scheduler.policy.sorters.replica_index import ReplicaIndexSorter
from modelplane.services.scheduler.server_index import IndexedViews, ServerIndex

CAPABILITY_SETS = (
    ("mlserver", "sklearn", "alibi-explain"),
    ("mlserver", "sklearn"),
    ("triton", "onnx"),
    ("custom",),
)
REQUIREMENTS = ("sklearn", "onnx", "custom", "alibi-explain", " sklearn ")
SERVER_NAMES = ("alpha", "beta", "gamma", "delta")
MODEL_NAMES = tuple(f"m{i}" for i in range(6))
EXAMPLES = 50


@st.composite
def replicas(
    draw: st.DrawFn, server: str, index: int, capabilities: tuple[str, ...], workers: int
) -> ReplicaView:
    # Coarse quantities so that exact fits (free == required) are common.
    memory = draw(st.sampled_from((0, 100, 200, 300, 400)))
    overcommit = draw(st.sampled_from((0, 0, 10, 50)))
    capacity = memory * (100 + overcommit) // 100
    used = 50 * draw(st.integers(0, capacity // 50))
    reserved = 50 * draw(st.integers(0, (capacity - used) // 50))
    return ReplicaView(
        server=server,
        index=index,
        # Mostly the server's capabilities; sometimes one replica disagrees (a rollout).
        capabilities=draw(st.sampled_from((capabilities,) * 9 + (("mlserver",),))),
        memory_bytes=memory,
        overcommit_percent=overcommit,
        used_bytes=used,
        reserved_bytes=reserved,
        draining=draw(st.sampled_from((False, False, False, True))),
        unavailable_reason=draw(st.sampled_from(("",) * 7 + ("runtime missing",))),
        assigned=frozenset(
            draw(st.lists(st.sampled_from([f"{m}_{v}" for m in MODEL_NAMES for v in (1, 2)]), max_size=2))
        ),
        parallel_workers=draw(st.sampled_from((workers,) * 9 + (3,))),
    )


@st.composite
def servers(draw: st.DrawFn) -> list[ServerView]:
    names = draw(st.lists(st.sampled_from(SERVER_NAMES), unique=True, max_size=len(SERVER_NAMES)))
    views = []
    for name in names:
        count = draw(st.integers(0, 4))
        capabilities = draw(st.sampled_from(CAPABILITY_SETS))
        workers = draw(st.sampled_from((0, 1, 2)))
        views.append(
            ServerView(
                name=name,
                expected_replicas=draw(st.sampled_from((count, count, 0))),
                replicas=tuple(draw(replicas(name, i, capabilities, workers)) for i in range(count)),
                exists=draw(st.sampled_from((True, True, True, False))),
            )
        )
    return views


@st.composite
def specs(draw: st.DrawFn) -> ModelSpec:
    count = draw(st.integers(1, 4))
    return ModelSpec(
        storage_uri="file:///m",
        requirements=tuple(draw(st.lists(st.sampled_from(REQUIREMENTS), max_size=2))),
        memory_bytes=draw(st.sampled_from((0, 50, 100, 150, 200, 300))),
        replicas=count,
        min_replicas=draw(st.integers(0, count)),
        server=draw(st.sampled_from(("",) * 8 + (*SERVER_NAMES, "missing"))),
        explainer_for=draw(st.sampled_from(("", "", "", "other"))),
        parallel_workers=draw(st.sampled_from((0, 0, 0, 2))),
        parameters={"b": "2", "a": "1"},
    )


@st.composite
def requests(draw: st.DrawFn) -> list[PlacementRequest]:
    names = draw(st.lists(st.sampled_from(MODEL_NAMES), unique=True, min_size=1, max_size=len(MODEL_NAMES)))
    return [
        PlacementRequest(name, 1, draw(specs()), draw(st.sampled_from(("",) * 8 + SERVER_NAMES)))
        for name in names
    ]


def book(views: list[ServerView], request: PlacementRequest, decision: Placed) -> list[ServerView]:
    """Reserve the model's memory on the chosen replicas, as the handler does on LoadRequested."""
    out = []
    for view in views:
        if view.name != decision.server:
            out.append(view)
            continue
        changed = []
        for r in view.replicas:
            if r.index in decision.indexes and not request.holds(r):
                r = r._replace(
                    reserved_bytes=r.reserved_bytes + request.required_on(r),
                    assigned=r.assigned | {request.server_model_name},
                )
            changed.append(r)
        out.append(dataclasses.replace(view, replicas=tuple(changed)))
    return out


def by_policy_objects(policy: PlacementPolicy) -> PlacementPolicy:
    """The same pipeline judged object by object (an equivalent sorter type turns the summaries off)."""

    class ReplicaIndexSorterCopy(ReplicaIndexSorter):
        pass

    copy = dataclasses.replace(
        policy, replica_sorters=(*policy.replica_sorters[:2], ReplicaIndexSorterCopy())
    )
    assert policy.indexed
    assert not copy.indexed
    return copy


def check_placed(request: PlacementRequest, views: Sequence[ServerView], decision: Placed) -> None:
    (server,) = [v for v in views if v.name == decision.server]
    chosen = [r for r in server.replicas if r.index in decision.indexes]
    assert len(chosen) == len(decision.indexes) == len(set(decision.indexes))
    assert len(chosen) + decision.missing == request.desired
    assert decision.missing == 0 or len(chosen) >= request.spec.min_replicas > 0
    assert server.exists
    assert server.expected_replicas > 0
    if request.spec.server:
        assert server.name == request.spec.server
    if request.current_server:
        assert server.name == request.current_server
    for r in chosen:
        caps = {c.strip() for c in r.capabilities}
        assert {q.strip() for q in request.spec.requirements if q.strip()} <= caps
        assert not request.spec.explainer_for or "alibi-explain" in caps
        assert not r.draining
        assert not r.unavailable_reason


@settings(max_examples=EXAMPLES, deadline=None)
@given(servers(), requests(), st.sampled_from(("best-fit", "spread")))
def test_placements_respect_memory_capabilities_draining_and_one_server(
    views: list[ServerView], batch: list[PlacementRequest], strategy: str
) -> None:
    """Placing models one after another never promises a replica more than memory x (1 + overcommit%),
    keeps every version on one server, and only uses capable, usable, non-draining replicas."""
    policy = default_policy(strategy)
    for request in batch:
        decision = place(request, views, policy)
        if isinstance(decision, Placed):
            check_placed(request, views, decision)
            views = book(views, request, decision)
        for view in views:
            for r in view.replicas:
                assert r.used_bytes + r.reserved_bytes <= r.capacity_bytes


@settings(max_examples=EXAMPLES, deadline=None)
@given(servers(), requests(), st.sampled_from(("best-fit", "spread")))
def test_summaries_decide_like_the_policy_objects(
    views: list[ServerView], batch: list[PlacementRequest], strategy: str
) -> None:
    """The summary-based evaluation gives exactly the decision (and reason) of the policy objects."""
    fast = default_policy(strategy)
    slow = by_policy_objects(fast)
    for request in batch:
        decision = place(request, views, fast)
        assert decision == place(request, views, slow)
        if isinstance(decision, Placed):
            views = book(views, request, decision)


@settings(max_examples=EXAMPLES, deadline=None)
@given(servers(), requests(), st.randoms(use_true_random=False), st.sampled_from(("best-fit", "spread")))
def test_same_input_same_placement_in_any_order(
    views: list[ServerView], batch: list[PlacementRequest], rnd: random.Random, strategy: str
) -> None:
    """Shuffling servers, replicas and assigned sets does not change any decision."""
    policy = default_policy(strategy)

    def shuffled(vs: list[ServerView]) -> list[ServerView]:
        out = []
        for v in vs:
            rs = [r._replace(assigned=frozenset(sorted(r.assigned, reverse=True))) for r in v.replicas]
            rnd.shuffle(rs)
            out.append(dataclasses.replace(v, replicas=tuple(rs)))
        rnd.shuffle(out)
        return out

    for request in batch:
        decision: Decision = place(request, views, policy)
        assert place(request, shuffled(views), policy) == decision
        assert place(request, views, policy) == decision
        if isinstance(decision, Placed):
            views = book(views, request, decision)


def indexed(views: list[ServerView]) -> IndexedViews:
    """``views`` with a ``ServerIndex`` over them, as ``ClusterViews.views()`` returns them."""
    held = {name for v in views for r in v.replicas for name in r.assigned}
    index = ServerIndex(lambda model: any(name.startswith(f"{model}_") for name in held))
    for view in views:
        index.put(view.name, view)
    return IndexedViews(views, index)


@settings(max_examples=EXAMPLES, deadline=None)
@given(servers(), requests(), st.sampled_from(("best-fit", "spread")))
def test_server_index_decides_like_judging_every_server(
    views: list[ServerView], batch: list[PlacementRequest], strategy: str
) -> None:
    """Narrowing the servers through the index never changes a decision (or its reason)."""
    policy = default_policy(strategy)
    for request in batch:
        decision = place(request, indexed(views), policy)
        assert decision == place(request, views, policy)
        if isinstance(decision, Placed):
            views = book(views, request, decision)
