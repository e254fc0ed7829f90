"""What the benchmark saw happen, in order: every KV change and NATS event it follows, stamped
with the local monotonic clock (``time.perf_counter``) when it arrived.

Pure: the NATS side (observer.py) only appends. Milestones are read back as "the first
observation of this key, after that moment, whose value satisfies this": e.g. the first
KV_ROUTES value of model ``m`` with 3 endpoints after the load started.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Observation:
    # time.perf_counter() when it arrived
    at: float
    # the KV bucket or the event kind (e.g. "wake")
    source: str
    key: str
    # the decoded protobuf message; None for a deleted key
    value: Any


class Timeline:
    def __init__(self) -> None:
        self._items: list[Observation] = []

    def add(self, observation: Observation) -> None:
        self._items.append(observation)

    def first(self, source: str, key: str, check: Callable[[Any], bool], after: float) -> Observation | None:
        """The first observation of ``key`` in ``source`` at or after ``after`` passing ``check``."""
        for item in self._items:
            if item.at >= after and item.source == source and item.key == key and check(item.value):
                return item
        return None

    def latest(self, source: str, key: str) -> Any:
        """The last value seen for ``key`` (None when never seen or deleted)."""
        for item in reversed(self._items):
            if item.source == source and item.key == key:
                return item.value
        return None

    def between(self, source: str, key: str, start: float, end: float) -> list[Observation]:
        """Every observation of ``key`` in ``source`` from ``start`` to ``end``, in order."""
        return [
            item
            for item in self._items
            if start <= item.at <= end and item.source == source and item.key == key
        ]
