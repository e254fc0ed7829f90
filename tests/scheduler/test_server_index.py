"""The cross-server index: the few servers it hands to ``place`` always include the winner."""

from __future__ import annotations

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView, ServerView
from modelplane.services.scheduler.placement import Placed, default_policy, place
from modelplane.services.scheduler.policy.base import PlacementRequest
from modelplane.services.scheduler.server_index import IndexedViews, ServerIndex

SK = ("mlserver", "sklearn")


def server(
    name: str, free: list[int], caps: tuple[str, ...] = SK, workers: list[int] | None = None
) -> ServerView:
    replicas = tuple(
        ReplicaView(
            name, i, caps, 1000, used_bytes=1000 - f, parallel_workers=(workers or [1] * len(free))[i]
        )
        for i, f in enumerate(free)
    )
    return ServerView(name, len(free), replicas)


def indexed(*views: ServerView, placed: frozenset[str] = frozenset()) -> IndexedViews:
    index = ServerIndex(lambda model: model in placed)
    for view in views:
        index.put(view.name, view)
    return IndexedViews(sorted(views, key=lambda v: v.name), index)


def request(replicas: int = 1, memory: int = 100, model: str = "iris", **spec: object) -> PlacementRequest:
    return PlacementRequest(
        model,
        1,
        ModelSpec(storage_uri="x", requirements=("sklearn",), memory_bytes=memory, replicas=replicas, **spec),  # type: ignore[arg-type]
    )


def test_best_fit_skips_a_smaller_sum_whose_last_replica_does_not_fit() -> None:
    # a: 300 + 10 free is the least, but its second replica cannot take 100.
    views = indexed(server("a", [300, 10]), server("b", [200, 200]), server("c", [500, 500]))
    decision = place(request(replicas=2), views, default_policy())
    assert decision == Placed("b", (0, 1))
    assert views.server_index.candidates(request(replicas=2), 2, 2, default_policy().strategy) == [views[1]]


def test_spread_takes_the_largest_sum_and_breaks_ties_by_name() -> None:
    views = indexed(server("a", [400, 100]), server("b", [400, 100]), server("c", [800, 50]))
    # c has the largest sum but its second replica cannot take 100; a and b tie: a wins.
    decision = place(request(replicas=2), views, default_policy("spread"))
    assert decision == Placed("a", (0, 1))


def test_groups_by_capabilities_and_workers() -> None:
    views = indexed(
        server("onnx", [900], caps=("triton", "onnx")),
        server("one-worker", [250]),
        server("two-workers", [250], workers=[2]),
    )
    # 100 x 2 workers = 200 fits two-workers' 250 more tightly than 100 fits one-worker's 250.
    assert place(request(), views, default_policy()) == Placed("two-workers", (0,))
    candidates = views.server_index.candidates(request(), 1, 1, default_policy().strategy)
    assert candidates is not None
    assert {v.name for v in candidates} == {"one-worker", "two-workers"}


def test_servers_whose_replicas_disagree_on_workers_are_always_candidates() -> None:
    mixed = server("mixed", [150, 150], workers=[1, 2])
    views = indexed(mixed, server("plain", [900, 900]))
    candidates = views.server_index.candidates(request(), 1, 1, default_policy().strategy)
    assert candidates is not None
    assert mixed in candidates
    assert place(request(), views, default_policy()) == place(request(), list(views), default_policy())


def test_the_index_steps_aside_where_it_would_not_be_exact() -> None:
    views = indexed(server("a", [500]), placed=frozenset({"placed"}))
    strategy = default_policy().strategy
    # A model with assignments (a server may hold its version), partial placement, explainers.
    assert views.server_index.candidates(request(model="placed"), 1, 1, strategy) is None
    assert views.server_index.candidates(request(replicas=2), 1, 2, strategy) is None
    assert views.server_index.candidates(request(explainer_for="iris"), 1, 1, strategy) is None
    # A pinned server is the only candidate.
    assert views.server_index.candidates(request(server="a"), 1, 1, strategy) == [views[0]]


def test_put_follows_changes_and_removal() -> None:
    index = ServerIndex(lambda model: False)
    index.put("a", server("a", [500]))
    index.put("b", server("b", [300]))
    strategy = default_policy().strategy
    assert [v.name for v in index.candidates(request(), 1, 1, strategy) or []] == ["b"]
    index.put("b", server("b", [50]))  # booked: b no longer fits
    assert [v.name for v in index.candidates(request(), 1, 1, strategy) or []] == ["a"]
    index.put("a", server("a", [500], caps=("triton",)))  # another group now
    assert index.candidates(request(), 1, 1, strategy) == []
    index.put("a", None)
    index.put("b", None)
    assert index.candidates(request(), 1, 1, strategy) == []
