"""RoundRobin: rotation per key, full candidate order for retries."""

from __future__ import annotations

from modelplane.services.gateway.balancers.round_robin import RoundRobin


def test_successive_requests_start_at_successive_replicas() -> None:
    """Each call starts one replica later and wraps around."""
    policy = RoundRobin()
    starts = [policy.order("iris:1", ["a", "b", "c"])[0] for _ in range(4)]
    assert starts == ["a", "b", "c", "a"]


def test_order_lists_every_candidate_once_for_retries() -> None:
    """After the chosen replica come the others, in ring order."""
    policy = RoundRobin()
    policy.order("iris:1", ["a", "b", "c"])
    assert policy.order("iris:1", ["a", "b", "c"]) == ["b", "c", "a"]


def test_keys_rotate_independently() -> None:
    """Traffic to one model version does not move another's rotation."""
    policy = RoundRobin()
    policy.order("iris:1", ["a", "b"])
    assert policy.order("wine:1", ["x", "y"])[0] == "x"


def test_shrinking_candidate_list_stays_in_range() -> None:
    """When replicas go away the rotation continues over the ones left."""
    policy = RoundRobin()
    for _ in range(5):
        policy.order("iris:1", ["a", "b", "c"])
    assert policy.order("iris:1", ["a"]) == ["a"]
    assert policy.order("iris:1", []) == []


def test_describe_names_the_policy() -> None:
    """describe() says which policy it is, for logs and errors."""
    assert RoundRobin().describe().startswith("RoundRobin")
