"""Per-model retry backoff: a model that keeps failing is retried less and less often.

The first retry is due ``initial`` seconds after the model is first seen needing one; each retry
doubles the delay up to ``maximum``; a model that no longer needs a retry forgets its delay, so
the next failure starts over at ``initial``. Capacity changes retry at once regardless (they are
events, not polling, and rare).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Delay:
    seconds: float
    due: float


class Backoff:
    def __init__(self, initial: float, maximum: float) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"backoff needs 0 < initial ({initial}) <= maximum ({maximum})")
        self._initial = initial
        self._maximum = maximum
        self._delays: dict[str, _Delay] = {}

    def due(self, key: str, now: float) -> bool:
        """True when ``key`` should be retried now (and schedules its next retry)."""
        delay = self._delays.get(key)
        if delay is None:
            self._delays[key] = _Delay(self._initial, now + self._initial)
            return False
        if now < delay.due:
            return False
        delay.seconds = min(delay.seconds * 2, self._maximum)
        delay.due = now + delay.seconds
        return True

    def reset(self, key: str) -> None:
        self._delays.pop(key, None)

    def delay(self, key: str) -> float | None:
        """The current delay of ``key`` in seconds (None when it is not backing off)."""
        delay = self._delays.get(key)
        return delay.seconds if delay else None
