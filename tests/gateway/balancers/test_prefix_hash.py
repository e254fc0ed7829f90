"""PrefixHash (CHWBL): sticky by prefix, bounded by load, stable under membership change, adapter-aware."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.libs.dataplane.balancers import RequestHint
from modelplane.libs.dataplane.balancers.in_flight import InFlight
from modelplane.libs.dataplane.balancers.prefix_hash import PrefixHash
from modelplane.libs.routes import RouteEndpoint
from tests.gateway.balancers.replicas import names, replica

KEY = "llm:1"
REPLICAS = [replica(n) for n in "abcd"]


def _first(
    policy: PrefixHash, prefix: str, candidates: list[RouteEndpoint] = REPLICAS, adapter: str = ""
) -> str:
    return names(policy.order(KEY, candidates, RequestHint(prefix=prefix, adapter=adapter)))[0]


def _load(loads: InFlight, server: str, count: int) -> None:
    for _ in range(count):
        loads.begin(KEY, f"{server}.0")


def test_same_prefix_goes_to_the_same_replica_while_under_the_bound() -> None:
    """Repeated requests with one prefix stick to one replica as its in-flight load grows within the bound."""
    loads = InFlight()
    policy = PrefixHash(loads)
    home = _first(policy, "You are a helpful assistant. Summarise:")
    for _ in range(3):
        assert _first(policy, "You are a helpful assistant. Summarise:") == home
    # Load elsewhere raises the mean; the home replica stays within ceil(1.25 x (total + 1) / n).
    for other in "abcd":
        if other != home:
            _load(loads, other, 2)
    _load(loads, home, 2)
    assert _first(policy, "You are a helpful assistant. Summarise:") == home


def test_a_replica_over_the_bound_is_skipped_for_the_next_on_the_ring() -> None:
    """When the home replica would exceed the bound, the request goes to the next replica clockwise."""
    loads = InFlight()
    policy = PrefixHash(loads)
    walk = names(policy.order(KEY, REPLICAS, RequestHint(prefix="hello")))
    # total 4 on the home replica: bound = ceil(1.25 x 5 / 4) = 2, and 4 + 1 > 2.
    _load(loads, walk[0], 4)
    assert names(policy.order(KEY, REPLICAS, RequestHint(prefix="hello"))) == [walk[1], walk[0], *walk[2:]]


def test_bound_counts_the_incoming_request() -> None:
    """load + 1 <= ceil(factor x (total + 1) / n): at the limit the replica is kept, one more and it is not."""
    two = REPLICAS[:2]
    loads = InFlight()
    policy = PrefixHash(loads)
    home = _first(policy, "p", two)
    other = next(n for n in "ab" if n != home)
    _load(loads, home, 1)  # total 1: bound ceil(1.25 x 2 / 2) = 2; 1 + 1 <= 2
    assert _first(policy, "p", two) == home
    _load(loads, home, 1)  # total 2: bound ceil(1.25 x 3 / 2) = 2; 2 + 1 > 2
    assert _first(policy, "p", two) == other


def test_a_larger_mean_load_factor_keeps_more_load_at_home() -> None:
    """meanLoadFactor 2.0 lets the home replica take twice the mean before spilling."""
    two = REPLICAS[:2]
    loads = InFlight()
    policy = PrefixHash(loads, mean_load_factor=2.0)
    home = _first(policy, "p", two)
    _load(loads, home, 2)  # total 2: bound ceil(2 x 3 / 2) = 3; 2 + 1 <= 3
    assert _first(policy, "p", two) == home


def _homes(policy: PrefixHash, candidates: list[RouteEndpoint], keys: list[str]) -> dict[str, str]:
    return {k: _first(policy, k, candidates) for k in keys}


KEYS = [f"conversation {i}: what is the capital of country {i * 7919}?" for i in range(10_000)]


def test_adding_a_replica_moves_about_one_in_n_keys_all_to_it() -> None:
    """Going from 4 to 5 replicas moves about 1/5 of the keys, and only onto the new replica."""
    policy = PrefixHash(InFlight())
    before = _homes(policy, REPLICAS, KEYS)
    after = _homes(policy, [*REPLICAS, replica("e")], KEYS)
    moved = [k for k in KEYS if before[k] != after[k]]
    assert {after[k] for k in moved} == {"e"}
    assert len(moved) / len(KEYS) == pytest.approx(1 / 5, abs=0.05)


def test_removing_a_replica_moves_only_its_keys() -> None:
    """Going from 4 to 3 replicas moves exactly the removed replica's keys (about 1/4)."""
    policy = PrefixHash(InFlight())
    before = _homes(policy, REPLICAS, KEYS)
    after = _homes(policy, REPLICAS[:3], KEYS)
    moved = [k for k in KEYS if before[k] != after[k]]
    assert {before[k] for k in moved} == {"d"}
    assert len(moved) / len(KEYS) == pytest.approx(1 / 4, abs=0.05)


def test_keys_spread_over_all_replicas() -> None:
    """With no load, the ring gives each of 4 replicas roughly a quarter of the keys."""
    homes = _homes(PrefixHash(InFlight()), REPLICAS, KEYS)
    for name in "abcd":
        assert sum(1 for h in homes.values() if h == name) / len(KEYS) == pytest.approx(1 / 4, abs=0.06)


def test_choice_does_not_depend_on_candidate_order() -> None:
    """The ring is built from replica names, so the route's listing order does not matter."""
    policy = PrefixHash(InFlight())
    assert [_first(policy, k) for k in KEYS[:50]] == [_first(policy, k, REPLICAS[::-1]) for k in KEYS[:50]]


def test_only_the_first_prefix_char_length_characters_count() -> None:
    """Prompts that share their first prefixCharLength characters share a replica."""
    policy = PrefixHash(InFlight(), prefix_char_length=10)
    homes = {_first(policy, f"0123456789 then anything {i}") for i in range(50)}
    assert len(homes) == 1


def test_no_prefix_hashes_the_route_key() -> None:
    """Requests without a prefix (V2) all go to the route key's home while under the bound."""
    policy = PrefixHash(InFlight())
    assert len({_first(policy, "") for _ in range(5)}) == 1


def test_replicas_without_the_adapter_are_skipped() -> None:
    """Only replicas serving the requested adapter are returned, whatever the ring says."""
    candidates = [replica("a"), replica("b", "lora"), replica("c"), replica("d", "lora")]
    policy = PrefixHash(InFlight())
    for key in KEYS[:200]:
        order = names(policy.order(KEY, candidates, RequestHint(prefix=key, adapter="lora")))
        assert set(order) == {"b", "d"}
    assert policy.order(KEY, candidates, RequestHint(prefix="x", adapter="other")) == []


def test_an_overloaded_only_adapter_replica_is_still_used() -> None:
    """When no replica with the adapter is within the bound, the first one on the walk serves."""
    candidates = [replica("a"), replica("b", "lora")]
    loads = InFlight()
    _load(loads, "b", 10)
    policy = PrefixHash(loads)
    assert names(policy.order(KEY, candidates, RequestHint(prefix="x", adapter="lora"))) == ["b"]


def test_the_adapter_is_part_of_the_key() -> None:
    """The same prompt for different adapters hashes to different points (KubeAI: adapter + prefix)."""
    policy = PrefixHash(InFlight())
    assert policy.hash_key(KEY, RequestHint("hi", "lora")) == "lorahi"
    assert policy.hash_key(KEY, RequestHint()) == KEY


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"mean_load_factor": 0.9}, "mean_load_factor"),
        ({"replication": 0}, "replication"),
        ({"prefix_char_length": 0}, "prefix_char_length"),
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, Any], name: str) -> None:
    """Settings that cannot work are refused when the policy is built."""
    with pytest.raises(ValueError, match=name):
        PrefixHash(InFlight(), **kwargs)


def test_describe_names_the_policy_and_its_settings() -> None:
    """describe() says which policy and with which settings."""
    text = PrefixHash(InFlight(), replication=64).describe()
    assert text.startswith("PrefixHash")
    assert "64" in text
