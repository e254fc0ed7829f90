"""How many replicas one Server should have (Seldon's server scaling, acted on; plus packing).

Design: pure. The scheduler asks (a ``ServerScaleRequest`` in KV_SCALE_REQUESTS, Seldon v2
semantics, reference §6): *up* when a model on the server got fewer replicas than it wants,
*down* when replicas became empty. This module decides what to apply:

- Up: the requested target within [minReplicas, maxReplicas] (0 = unbounded), applied at once.
- Down: only once every replica of the current count is registered (a change in flight is not
  judged half-way), never below max(minReplicas, 1), and never removing a replica that serves a
  model with nowhere else to go. Replicas go highest index first (a StatefulSet's order, and the
  local launcher's), so the replicas removed are not always the empty ones: their models must
  fit on the replicas that stay, each on a replica that does not hold it yet and has the memory
  free. When the requested count does not allow that, the smallest count that does is taken.
- Packing (optional): without any request, the smallest count whose replicas can take every
  model of the removed ones, so a server whose load fell consolidates onto fewer replicas. It
  never goes below the largest replica count of any one model on the server (each copy needs its
  own replica), which model autoscaling already sizes to load.

The fit is first-fit decreasing by memory onto the remaining replica with the most room: not
optimal bin packing, but it never claims a fit that does not exist, which is the property that
matters (a wrong "fits" would strand a model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

Direction = Literal["up", "down"]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    name: str
    # Server.spec.replicas: what is asked for now.
    replicas: int
    min_replicas: int = 0
    # 0 = unbounded
    max_replicas: int = 0

    @property
    def floor(self) -> int:
        return max(1, self.min_replicas)

    def clamp(self, replicas: int) -> int:
        replicas = max(replicas, self.floor)
        return min(replicas, self.max_replicas) if self.max_replicas > 0 else replicas


@dataclass(frozen=True, slots=True)
class ScaleAsk:
    """The scheduler's pending request for the server."""

    direction: Direction
    target: int
    reason: str


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    """A live replica of the server and what it holds."""

    index: int
    # Memory placement may still give out: capacity minus loaded minus reserved.
    free_bytes: int
    # Names of the models it holds (or is loading).
    models: tuple[str, ...] = ()
    draining: bool = False


@dataclass(frozen=True, slots=True)
class ServerDecision:
    server: str
    current: int
    desired: int
    reason: str

    @property
    def changes(self) -> bool:
        return self.desired != self.current


def stranded(replicas: Sequence[ReplicaLoad], keep: int, bytes_of: Callable[[str], int]) -> str | None:
    """None when every model on a replica with index >= ``keep`` fits on the replicas below it;
    else which model would have nowhere to go."""
    staying = [r for r in replicas if r.index < keep and not r.draining]
    room = {r.index: r.free_bytes for r in staying}
    holds = {r.index: set(r.models) for r in staying}
    moving = [(bytes_of(model), model, r.index) for r in replicas if r.index >= keep for model in r.models]
    # Largest first: the hardest to place goes while there is the most room.
    for size, model, source in sorted(moving, key=lambda m: (-m[0], m[1], m[2])):
        fits = [i for i in room if model not in holds[i] and room[i] >= size]
        if not fits:
            return f"replica {source} serves model {model}, which has nowhere else to go"
        best = max(fits, key=lambda i: (room[i], -i))
        room[best] -= size
        holds[best].add(model)
    return None


def _smallest_safe(
    replicas: Sequence[ReplicaLoad], start: int, current: int, bytes_of: Callable[[str], int]
) -> tuple[int, str | None]:
    """The smallest count from ``start`` up to ``current`` that strands nothing, and why the
    counts below it would have (None when ``start`` itself is safe)."""
    blocked: str | None = None
    for keep in range(start, current):
        why = stranded(replicas, keep, bytes_of)
        if why is None:
            return keep, blocked
        blocked = blocked or why
    return current, blocked


def decide(
    server: ServerLimits,
    ask: ScaleAsk | None,
    replicas: Sequence[ReplicaLoad],
    bytes_of: Callable[[str], int],
    *,
    packing: bool = False,
) -> ServerDecision | None:
    """What to apply to ``server`` now, or None when nothing should change."""
    current = server.replicas
    if current <= 0:
        return None  # scaled to zero or being deleted by its owner: not ours to grow back
    if ask is not None and ask.direction == "up":
        desired = server.clamp(max(ask.target, current))
        if desired > current:
            return ServerDecision(
                server.name, current, desired, f"scheduler asks for {ask.target}: {ask.reason}"
            )
        return None
    if len(replicas) != current or any(r.index >= current for r in replicas):
        return None  # a change is still under way: judge once every replica is there
    wanted: list[tuple[int, str]] = []
    if ask is not None and ask.direction == "down":
        wanted.append((server.clamp(ask.target), f"scheduler asks for {ask.target}: {ask.reason}"))
    if packing:
        copies: dict[str, int] = {}
        for r in replicas:
            for model in set(r.models):
                copies[model] = copies.get(model, 0) + 1
        least = server.clamp(max(copies.values(), default=0))
        keep, _ = _smallest_safe(replicas, least, current, bytes_of)
        if keep < current:
            wanted.append((keep, f"packing: the models fit on {keep} replicas"))
    if not wanted:
        return None
    target, reason = min(wanted)
    if target >= current:
        return None
    keep, blocked = _smallest_safe(replicas, target, current, bytes_of)
    if keep >= current:
        return ServerDecision(server.name, current, current, f"not scaling down: {blocked}")
    if blocked is not None:
        reason = f"{reason}; keeping {keep} ({blocked})"
    return ServerDecision(server.name, current, keep, reason)
