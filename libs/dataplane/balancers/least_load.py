"""LeastLoad: the replica answering the fewest requests of this model version goes first."""

from __future__ import annotations

from collections.abc import Sequence

from modelplane.libs.dataplane.balancers import NO_HINT, C, Loads, RequestHint, serving


class LeastLoad:
    """Fewest in-flight requests first; equal loads take turns (round robin), so idle replicas
    share sequential traffic instead of the first one taking it all. Deterministic for a given
    sequence of calls and loads."""

    name = "LeastLoad"

    def __init__(self, loads: Loads) -> None:
        self._loads = loads
        # Rotation among equally loaded replicas, per key (bounded by the routes).
        self._next: dict[str, int] = {}

    def order(self, key: str, candidates: Sequence[C], hint: RequestHint = NO_HINT) -> list[C]:
        candidates = serving(candidates, hint.adapter)
        if not candidates:
            return []
        n = len(candidates)
        start = self._next.get(key, 0) % n
        self._next[key] = start + 1
        # Sort by load, then by distance from this request's turn position: ties rotate.
        ranked = sorted(range(n), key=lambda i: (self._loads.of(key, candidates[i].replica), (i - start) % n))
        return [candidates[i] for i in ranked]

    def describe(self) -> str:
        return (
            "LeastLoad: the replica with the fewest in-flight requests for this model version first "
            "(ties take turns); on failure the next least loaded"
        )
