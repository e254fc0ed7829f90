"""LeastLoad: fewest in-flight first, ties rotate, adapters filter."""

from __future__ import annotations

from modelplane.libs.dataplane.balancers import RequestHint
from modelplane.libs.dataplane.balancers.in_flight import InFlight
from modelplane.libs.dataplane.balancers.least_load import LeastLoad
from tests.gateway.balancers.replicas import names, replica

A, B, C = replica("a"), replica("b"), replica("c")
KEY = "m:1"


def _loaded(**counts: int) -> InFlight:
    loads = InFlight()
    for name, count in counts.items():
        for _ in range(count):
            loads.begin(KEY, f"{name}.0")
    return loads


def test_least_loaded_replica_goes_first_then_by_load() -> None:
    """The order is ascending in-flight count: the retry candidates are the next least loaded."""
    policy = LeastLoad(_loaded(a=3, b=0, c=1))
    assert names(policy.order(KEY, [A, B, C])) == ["b", "c", "a"]


def test_equal_loads_take_turns() -> None:
    """Idle replicas share sequential traffic instead of the first one taking it all."""
    policy = LeastLoad(InFlight())
    assert [names(policy.order(KEY, [A, B, C]))[0] for _ in range(4)] == ["a", "b", "c", "a"]


def test_ties_rotate_only_among_the_least_loaded() -> None:
    """A busier replica is never chosen while a less loaded one exists."""
    policy = LeastLoad(_loaded(b=1))
    firsts = {names(policy.order(KEY, [A, B, C]))[0] for _ in range(6)}
    assert firsts == {"a", "c"}


def test_loads_of_other_keys_do_not_count() -> None:
    """Counts are per model version, as KubeAI counts per model group."""
    loads = InFlight()
    loads.begin("other:1", "a.0")
    assert names(LeastLoad(loads).order(KEY, [A, B]))[0] == "a"


def test_replicas_without_the_adapter_are_skipped() -> None:
    """Only replicas serving the requested adapter are candidates, even if less loaded."""
    with_lora = [replica("a"), replica("b", "lora")]
    policy = LeastLoad(_loaded(b=5))
    assert names(policy.order(KEY, with_lora, RequestHint(adapter="lora"))) == ["b"]
    assert policy.order(KEY, with_lora, RequestHint(adapter="missing")) == []


def test_describe_names_the_policy() -> None:
    """describe() says which policy it is."""
    assert LeastLoad(InFlight()).describe().startswith("LeastLoad")
