"""Load-balancing policies: which replica of a model version serves the next request.

Each policy is a small named object in its own module with ``describe()``, so logs and errors
can say which policy chose (or failed to choose) a replica. More strategies (LeastLoad,
PrefixHash) plug in through the same protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")


class Balancer(Protocol):
    """Orders the candidate replicas of one route key: try the first, then the next on failure."""

    name: str

    def order(self, key: str, candidates: Sequence[T]) -> list[T]:
        """All ``candidates`` in the order to try them for one request to ``key``."""
        ...

    def describe(self) -> str:
        """One line saying how the policy chooses."""
        ...
