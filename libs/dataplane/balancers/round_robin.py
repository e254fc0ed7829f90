"""Round robin: successive requests to one model version start at successive replicas."""

from __future__ import annotations

from collections.abc import Sequence

from modelplane.libs.dataplane.balancers import NO_HINT, C, RequestHint, serving


class RoundRobin:
    """Rotates the starting replica per key; the rest follow in order as retry candidates."""

    name = "RoundRobin"

    def __init__(self) -> None:
        # Next start position per key (one per model version served: bounded by the routes).
        self._next: dict[str, int] = {}

    def order(self, key: str, candidates: Sequence[C], hint: RequestHint = NO_HINT) -> list[C]:
        candidates = serving(candidates, hint.adapter)
        if not candidates:
            return []
        start = self._next.get(key, 0) % len(candidates)
        self._next[key] = start + 1
        return [*candidates[start:], *candidates[:start]]

    def describe(self) -> str:
        return "RoundRobin: each request starts at the next replica in turn; on failure the following one"
