"""In-flight request accounting: how many requests each replica is answering right now.

Design: the handler's ``forward`` calls ``begin`` before it calls a replica and ``end`` in a
``finally``, so a count can never leak, whatever the call raised. Counts are kept per route key
and replica (what LeastLoad and PrefixHash weigh, as KubeAI counts per model group), and summed
per key and per replica for the load signals. Everything runs on the event loop thread: plain
dicts, no locks. Zero entries are removed, so memory follows the traffic in flight, not the
history of replicas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypeVar

K = TypeVar("K")


class InFlightView(Protocol):
    """The read-only side of ``InFlight`` (balancers, load signals, metrics)."""

    def of(self, key: str, replica: str) -> int: ...

    def of_key(self, key: str) -> int: ...

    def of_replica(self, replica: str) -> int: ...

    def by_key(self) -> Mapping[str, int]: ...

    def by_replica(self) -> Mapping[str, int]: ...

    def by_pair(self) -> Mapping[tuple[str, str], int]: ...


class InFlight:
    """Requests in flight per (route key, replica); read through ``of``/``by_*`` only."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], int] = {}
        self._keys: dict[str, int] = {}
        self._replicas: dict[str, int] = {}

    def begin(self, key: str, replica: str) -> None:
        """A request to ``key`` is being sent to ``replica``."""
        pair = (key, replica)
        self._pairs[pair] = self._pairs.get(pair, 0) + 1
        self._keys[key] = self._keys.get(key, 0) + 1
        self._replicas[replica] = self._replicas.get(replica, 0) + 1

    def end(self, key: str, replica: str) -> None:
        """That request is over (answered, failed or cancelled)."""
        _decrement(self._pairs, (key, replica))
        _decrement(self._keys, key)
        _decrement(self._replicas, replica)

    def of(self, key: str, replica: str) -> int:
        return self._pairs.get((key, replica), 0)

    def of_key(self, key: str) -> int:
        """Requests in flight to one model version, over all its replicas."""
        return self._keys.get(key, 0)

    def of_replica(self, replica: str) -> int:
        """Requests in flight on one replica, over all the models it serves."""
        return self._replicas.get(replica, 0)

    def by_key(self) -> Mapping[str, int]:
        """A snapshot of the non-zero per-key counts."""
        return dict(self._keys)

    def by_replica(self) -> Mapping[str, int]:
        """A snapshot of the non-zero per-replica counts."""
        return dict(self._replicas)

    def by_pair(self) -> Mapping[tuple[str, str], int]:
        """A snapshot of the non-zero (key, replica) counts."""
        return dict(self._pairs)


def _decrement(counts: dict[K, int], key: K) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
