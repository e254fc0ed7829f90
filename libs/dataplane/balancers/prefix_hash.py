"""PrefixHash: consistent hashing with bounded loads (CHWBL), as KubeAI balances LLM traffic.

Requests that share a prompt prefix go to the same replica, whose prefix (KV) cache then already
holds it, unless that replica is carrying more than its share of the load, in which case the
request moves on around the ring. The algorithm, per route key:

- ring: every replica owns ``replication`` points, hash(name + i) for i in 0..replication-1,
  sorted; the ring depends only on the set of replica names, so adding or removing one replica
  moves only the keys that land on its points (about 1/n of them);
- key: the adapter name + the first ``prefix_char_length`` characters of the request's prefix
  (the route key when the request gives no prefix);
- walk clockwise from the first point >= hash(key); skip replicas that do not serve the
  requested adapter; the first replica whose load is within the bound wins:
  ``in_flight + 1 <= ceil(mean_load_factor * (total_in_flight + 1) / n)`` where the ``+ 1``s
  count the incoming request and n is the number of replicas of the key;
- when none is within the bound, the first adapter-serving replica met on the walk (KubeAI's
  fallback).

The returned order is the winner, then the other replicas in walk order (retry candidates).
Hash: the first 8 bytes of BLAKE2b, stable across processes and Python versions (Python's
``hash`` is salted per process).

Differences from KubeAI: KubeAI hashes with xxhash64 and compares against the bound without
``ceil``; the ceil (as in the CHWBL paper, capacity ceil(c * m / n)) lets a lightly loaded group
keep a key on its replica instead of every replica failing a bound below 1.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from modelplane.libs.dataplane.balancers import NO_HINT, C, Loads, RequestHint

DEFAULT_MEAN_LOAD_FACTOR = 1.25
DEFAULT_REPLICATION = 256
DEFAULT_PREFIX_CHAR_LENGTH = 100


def ring_hash(text: str) -> int:
    """A stable 64-bit hash of ``text``."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class _Ring:
    names: frozenset[str]
    points: list[int]
    owners: list[str]


class PrefixHash:
    """CHWBL over the replicas of each route key; see the module docstring."""

    name = "PrefixHash"

    def __init__(
        self,
        loads: Loads,
        *,
        mean_load_factor: float = DEFAULT_MEAN_LOAD_FACTOR,
        replication: int = DEFAULT_REPLICATION,
        prefix_char_length: int = DEFAULT_PREFIX_CHAR_LENGTH,
    ) -> None:
        if mean_load_factor < 1.0:
            raise ValueError(f"mean_load_factor must be >= 1.0, got {mean_load_factor}")
        if replication < 1:
            raise ValueError(f"replication must be >= 1, got {replication}")
        if prefix_char_length < 1:
            raise ValueError(f"prefix_char_length must be >= 1, got {prefix_char_length}")
        self._loads = loads
        self.mean_load_factor = mean_load_factor
        self.replication = replication
        self.prefix_char_length = prefix_char_length
        # One ring per route key, rebuilt only when its set of replicas changes.
        self._rings: dict[str, _Ring] = {}

    def hash_key(self, key: str, hint: RequestHint) -> str:
        """The text hashed onto the ring for one request."""
        prefix = hint.prefix[: self.prefix_char_length] if hint.prefix else key
        return hint.adapter + prefix

    def order(self, key: str, candidates: Sequence[C], hint: RequestHint = NO_HINT) -> list[C]:
        if not candidates:
            return []
        by_name = {c.replica: c for c in candidates}
        ring = self._ring(key, by_name)
        walk = self._walk(ring, ring_hash(self.hash_key(key, hint)), by_name, hint.adapter)
        if not walk:
            return []
        n = len(by_name)
        total = sum(self._loads.of(key, name) for name in by_name)
        bound = math.ceil(self.mean_load_factor * (total + 1) / n)
        chosen = next((c for c in walk if self._loads.of(key, c.replica) + 1 <= bound), walk[0])
        return [chosen, *(c for c in walk if c is not chosen)]

    def _ring(self, key: str, by_name: dict[str, C]) -> _Ring:
        names = frozenset(by_name)
        ring = self._rings.get(key)
        if ring is None or ring.names != names:
            pairs = sorted((ring_hash(f"{name}{i}"), name) for name in names for i in range(self.replication))
            ring = _Ring(names, [p for p, _ in pairs], [o for _, o in pairs])
            self._rings[key] = ring
        return ring

    @staticmethod
    def _walk(ring: _Ring, start_hash: int, by_name: dict[str, C], adapter: str) -> list[C]:
        """Distinct replicas serving ``adapter`` in clockwise order from ``start_hash``."""
        wanted = sum(1 for c in by_name.values() if not adapter or adapter in c.adapters)
        seen: set[str] = set()
        walk: list[C] = []
        size = len(ring.points)
        first = bisect.bisect_left(ring.points, start_hash)
        for step in range(size):
            if len(walk) == wanted:
                break
            name = ring.owners[(first + step) % size]
            if name in seen:
                continue
            seen.add(name)
            candidate = by_name[name]
            if not adapter or adapter in candidate.adapters:
                walk.append(candidate)
        return walk

    def describe(self) -> str:
        return (
            f"PrefixHash: consistent hashing with bounded loads over {self.replication} ring points "
            f"per replica, key = adapter + first {self.prefix_char_length} prompt characters, a "
            f"replica is skipped above {self.mean_load_factor:g} x the mean in-flight load"
        )
