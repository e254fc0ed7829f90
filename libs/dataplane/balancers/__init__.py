"""Load-balancing policies: which replica of a model version serves the next request.

Each policy is a small named object in its own module with ``describe()``, so logs and errors
can say which policy chose (or failed to choose) a replica: RoundRobin (the default), LeastLoad
(fewest in-flight requests) and PrefixHash (consistent hashing with bounded loads, as KubeAI).
A policy orders the candidates of one route key (``<model>:<version>``); the handler tries the
first and moves down the list only when a replica could not be reached.

Policies that weigh load read the in-flight counts the handler keeps (``in_flight.InFlight``)
through the read-only ``Loads`` view; what a request itself says about where it should go (the
prompt prefix, the adapter it wants) arrives as a ``RequestHint`` from the adapters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound="Candidate")


@dataclass(frozen=True, slots=True)
class RequestHint:
    """What a request says about its best replica; empty fields mean "nothing to say".

    ``prefix``: the start of the prompt (OpenAI routes: the first user message, or the prompt),
    so requests sharing it meet the same replica's cache. ``adapter``: the LoRA adapter asked
    for; only replicas serving it are candidates.
    """

    prefix: str = ""
    adapter: str = ""


NO_HINT = RequestHint()


class Candidate(Protocol):
    """A replica as the policies see it (``libs.routes.RouteEndpoint`` is one)."""

    @property
    def replica(self) -> str:
        """The replica's unique name, ``<server>.<index>``."""
        ...

    @property
    def adapters(self) -> tuple[str, ...]:
        """Adapters the replica serves for this model version."""
        ...


class Loads(Protocol):
    """Read-only in-flight counts (``in_flight.InFlight``)."""

    def of(self, key: str, replica: str) -> int:
        """Requests to route key ``key`` currently being answered by ``replica``."""
        ...


class Balancer(Protocol):
    """Orders the candidate replicas of one route key: try the first, then the next on failure."""

    name: str

    def order(self, key: str, candidates: Sequence[C], hint: RequestHint = NO_HINT) -> list[C]:
        """The ``candidates`` able to serve ``hint`` in the order to try them for one request."""
        ...

    def describe(self) -> str:
        """One line saying how the policy chooses."""
        ...


def serving(candidates: Sequence[C], adapter: str) -> list[C]:
    """The candidates that serve ``adapter`` (all of them when no adapter is asked for)."""
    if not adapter:
        return list(candidates)
    return [c for c in candidates if adapter in c.adapters]
