"""RoundRobin: rotation per key, full candidate order for retries."""

from __future__ import annotations

from modelplane.libs.dataplane.balancers import RequestHint
from modelplane.libs.dataplane.balancers.round_robin import RoundRobin
from tests.gateway.balancers.replicas import names, replica

A, B, C = replica("a"), replica("b"), replica("c")


def test_successive_requests_start_at_successive_replicas() -> None:
    """Each call starts one replica later and wraps around."""
    policy = RoundRobin()
    starts = [names(policy.order("iris:1", [A, B, C]))[0] for _ in range(4)]
    assert starts == ["a", "b", "c", "a"]


def test_order_lists_every_candidate_once_for_retries() -> None:
    """After the chosen replica come the others, in ring order."""
    policy = RoundRobin()
    policy.order("iris:1", [A, B, C])
    assert names(policy.order("iris:1", [A, B, C])) == ["b", "c", "a"]


def test_keys_rotate_independently() -> None:
    """Traffic to one model version does not move another's rotation."""
    policy = RoundRobin()
    policy.order("iris:1", [A, B])
    assert names(policy.order("wine:1", [C, A]))[0] == "c"


def test_shrinking_candidate_list_stays_in_range() -> None:
    """When replicas go away the rotation continues over the ones left."""
    policy = RoundRobin()
    for _ in range(5):
        policy.order("iris:1", [A, B, C])
    assert names(policy.order("iris:1", [A])) == ["a"]
    assert policy.order("iris:1", []) == []


def test_only_replicas_serving_the_adapter_are_candidates() -> None:
    """A request for an adapter rotates over the replicas that serve it."""
    policy = RoundRobin()
    with_lora = [replica("a"), replica("b", "lora"), replica("c", "lora")]
    hint = RequestHint(adapter="lora")
    assert [names(policy.order("m:1", with_lora, hint))[0] for _ in range(3)] == ["b", "c", "b"]


def test_describe_names_the_policy() -> None:
    """describe() says which policy it is, for logs and errors."""
    assert RoundRobin().describe().startswith("RoundRobin")
