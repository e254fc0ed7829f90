"""Server replica decisions: Seldon's scale requests acted on within bounds, scale-down that
strands no model, and optional packing."""

from __future__ import annotations

from modelplane.services.autoscaler.server_scaling import (
    ReplicaLoad,
    ScaleAsk,
    ServerLimits,
    decide,
    stranded,
)

GB = 1 << 30


def size(model: str) -> int:
    return {"big": 6 * GB}.get(model, 1 * GB)


def test_scale_up_follows_the_request_within_max_replicas() -> None:
    """Up is applied at once, capped at maxReplicas; a request at or below the count does nothing."""
    server = ServerLimits("s", replicas=1, min_replicas=1, max_replicas=3)
    decision = decide(server, ScaleAsk("up", 5, "model a has 1 of 5 replicas"), [], size)
    assert decision is not None
    assert (decision.current, decision.desired) == (1, 3)
    assert decision.reason == "scheduler asks for 5: model a has 1 of 5 replicas"
    assert decide(ServerLimits("s", replicas=3), ScaleAsk("up", 3, "x"), [], size) is None


def test_scale_down_removes_empty_top_replicas_but_not_below_min() -> None:
    """Two empty replicas at the top go; minReplicas 2 keeps one of them."""
    replicas = [ReplicaLoad(0, 10 * GB, ("a",)), ReplicaLoad(1, 10 * GB), ReplicaLoad(2, 10 * GB)]
    down = ScaleAsk("down", 1, "2 replicas are empty")
    decision = decide(ServerLimits("s", replicas=3, min_replicas=1), down, replicas, size)
    assert decision is not None
    assert decision.desired == 1
    kept = decide(ServerLimits("s", replicas=3, min_replicas=2), down, replicas, size)
    assert kept is not None
    assert kept.desired == 2


def test_models_on_removed_replicas_move_only_where_they_fit() -> None:
    """Replica 0 is empty but replica 1 (the one that goes) holds a: it moves to 0. A model that
    is already on every staying replica, or too big for their free memory, keeps its replica."""
    movable = [ReplicaLoad(0, 10 * GB), ReplicaLoad(1, 2 * GB, ("a",))]
    decision = decide(ServerLimits("s", replicas=2), ScaleAsk("down", 1, "1 replica is empty"), movable, size)
    assert decision is not None
    assert decision.desired == 1
    copies = [ReplicaLoad(0, 10 * GB, ("a",)), ReplicaLoad(1, 10 * GB, ("a",))]
    assert stranded(copies, 1, size) == "replica 1 serves model a, which has nowhere else to go"
    blocked = decide(ServerLimits("s", replicas=2), ScaleAsk("down", 1, "x"), copies, size)
    assert blocked is not None
    assert not blocked.changes
    assert blocked.reason == "not scaling down: replica 1 serves model a, which has nowhere else to go"
    too_big = [ReplicaLoad(0, 4 * GB, ("a",)), ReplicaLoad(1, 0, ("big",))]
    assert stranded(too_big, 1, size) == "replica 1 serves model big, which has nowhere else to go"


def test_the_smallest_safe_count_is_taken_when_the_asked_one_strands_a_model() -> None:
    """Asked for 1 of 3; the models on 1 and 2 fit only with replica 1 kept: scale to 2."""
    replicas = [
        ReplicaLoad(0, 1 * GB, ("a",)),
        ReplicaLoad(1, 1 * GB, ("b",)),
        ReplicaLoad(2, 5 * GB, ("c",)),
    ]
    decision = decide(ServerLimits("s", replicas=3), ScaleAsk("down", 1, "ask"), replicas, size)
    assert decision is not None
    assert decision.desired == 2
    assert decision.reason.startswith("scheduler asks for 1: ask; keeping 2 (replica")


def test_no_down_decision_while_replicas_are_still_coming_or_going() -> None:
    """Two of three replicas registered: wait rather than judge a half-done change."""
    replicas = [ReplicaLoad(0, 10 * GB), ReplicaLoad(1, 10 * GB)]
    assert decide(ServerLimits("s", replicas=3), ScaleAsk("down", 1, "x"), replicas, size) is None


def test_packing_consolidates_when_models_fit_and_keeps_each_copy_apart() -> None:
    """a, b and c spread over 3 replicas fit on one; with two copies of a, two replicas stay.
    Without packing, no request means no change."""
    spread = [ReplicaLoad(0, 8 * GB, ("a",)), ReplicaLoad(1, 8 * GB, ("b",)), ReplicaLoad(2, 8 * GB, ("c",))]
    server = ServerLimits("s", replicas=3)
    assert decide(server, None, spread, size) is None
    packed = decide(server, None, spread, size, packing=True)
    assert packed is not None
    assert (packed.desired, packed.reason) == (1, "packing: the models fit on 1 replicas")
    twice = [
        ReplicaLoad(0, 8 * GB, ("a",)),
        ReplicaLoad(1, 8 * GB, ("a", "b")),
        ReplicaLoad(2, 8 * GB, ("c",)),
    ]
    kept = decide(server, None, twice, size, packing=True)
    assert kept is not None
    assert kept.desired == 2


def test_a_server_at_zero_is_left_alone() -> None:
    """Replicas 0 (scaled to zero or being deleted): no request brings it back."""
    assert decide(ServerLimits("s", replicas=0), ScaleAsk("up", 2, "x"), [], size) is None
