"""What a placement policy object is: the request it judges and the kinds of objects.

- ``ServerFilter.reject(request, server)`` -> None to keep the server, else why not (one phrase).
- ``ReplicaFilter.accepts(request, replica)``; when too few replicas of a server pass, the filter's
  ``explain(...)`` says why in one phrase ("1 of 2 replicas has enough memory (needs 100Mi)").
- ``ReplicaSorter.key(request, replica)`` and ``ServerSorter.key(request, option)``: sort keys,
  combined in list order (the first sorter has the highest priority); lower sorts first.
- ``ServerStrategy.rank(leftover_bytes)``: how the strategy (best-fit, spread) orders the servers
  that can take a request, from the free memory their chosen replicas would keep.

Every object has ``name`` and ``describe()`` so the pipeline can list itself and a failed
placement can say which rule rejected what. Explanations are only built when a placement fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView, ServerView
from modelplane.services.scheduler.records import required_bytes, server_model_name


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """Place ``replicas`` copies of one model version."""

    model: str
    version: int
    spec: ModelSpec
    # The server the version already has live replicas on; a version never spans servers.
    current_server: str = ""
    # Derived once (placement reads them for every server): "<model>_<version>" and the
    # trimmed, non-empty requirements.
    server_model_name: str = field(init=False, default="", compare=False)
    requirement_set: frozenset[str] = field(init=False, default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "server_model_name", server_model_name(self.model, self.version))
        wanted = frozenset(r.strip() for r in self.spec.requirements)
        object.__setattr__(self, "requirement_set", wanted - {""})

    @property
    def desired(self) -> int:
        return self.spec.replicas

    def required_on(self, replica: ReplicaView) -> int:
        return required_bytes(self.spec, replica.parallel_workers)

    def holds(self, replica: ReplicaView) -> bool:
        """The replica already has (or is getting) this version."""
        return self.server_model_name in replica.assigned


@dataclass(frozen=True, slots=True)
class ServerOption:
    """A server that can take the request, with the replicas that would be used."""

    server: ServerView
    chosen: tuple[ReplicaView, ...]

    def leftover_bytes(self, request: PlacementRequest) -> int:
        """Free memory the chosen replicas keep after the model is added (best fit = least)."""
        total = 0
        for r in self.chosen:
            extra = 0 if request.holds(r) else request.required_on(r)
            total += max(0, r.free_bytes - extra)
        return total


class ServerFilter(Protocol):
    name: str

    def describe(self) -> str: ...

    def reject(self, request: PlacementRequest, server: ServerView) -> str | None: ...


class ReplicaFilter(Protocol):
    name: str

    def describe(self) -> str: ...

    def accepts(self, request: PlacementRequest, replica: ReplicaView) -> bool: ...

    def explain(
        self, request: PlacementRequest, rejected: Sequence[ReplicaView], passed: int, total: int
    ) -> str: ...


class ReplicaSorter(Protocol):
    name: str

    def describe(self) -> str: ...

    def key(self, request: PlacementRequest, replica: ReplicaView) -> Any: ...


class ServerSorter(Protocol):
    name: str

    def describe(self) -> str: ...

    def key(self, request: PlacementRequest, option: ServerOption) -> Any: ...


class ServerStrategy(Protocol):
    """Orders the servers that can take a request; lower rank wins, ties go by server name."""

    name: str

    def describe(self) -> str: ...

    def rank(self, leftover_bytes: int) -> int: ...

    def key(self, request: PlacementRequest, option: ServerOption) -> int: ...


def replicas_word(n: int) -> str:
    return "replica" if n == 1 else "replicas"
