"""The bytes the gateway holds for held requests, bounded per model and in total.

Why: a request for a model at zero replicas (or loading) waits in the gateway with its whole
body in memory (holding.py bounds how long and how many). Without a byte bound, a burst of large
bodies for such a model holds gigabytes: 1,000 held requests of 100 MiB each is 100 GB. Each
held request reserves its body's size here first; past ``per_model`` bytes for one model or
``total`` bytes over all models the request gets 503 with Retry-After at once. The REST server
asks before it reads a body (the declared Content-Length; ``RestAdapter.admit``, the HTTP
server's admission hook), so a refused body is never read; gRPC messages and OpenAI requests,
whose model is known only from the message, reserve when they are about to be held.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Final

from modelplane.libs.errors import RetryableError

# HttpRequest.state key of the bytes the REST server reserved for a request before reading its
# body (a ``Reservation``; the server gives them back once the handler returned).
RESERVATION: Final = "held_bytes"
# Seconds a refused client should wait: about the time a replica takes to come up and drain.
RETRY_AFTER_SECONDS = 5.0


class Reservation:
    """Bytes reserved for one held request; ``release()`` (or leaving the ``with``) gives them back."""

    __slots__ = ("_owner", "model", "size")

    def __init__(self, owner: HeldBytes, model: str, size: int) -> None:
        self._owner: HeldBytes | None = owner
        self.model = model
        self.size = size

    def release(self) -> None:
        """Idempotent: the first call gives the bytes back."""
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._give_back(self.model, self.size)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class HeldBytes:
    """Per-model and total byte budgets of held requests."""

    def __init__(self, *, per_model: int, total: int) -> None:
        if per_model < 0 or total < 0:
            raise ValueError("held-byte bounds must be >= 0")
        self.per_model = per_model
        self.total = total
        self._by_model: dict[str, int] = {}
        self._held = 0

    @classmethod
    def unbounded(cls) -> HeldBytes:
        return cls(per_model=sys.maxsize, total=sys.maxsize)

    @property
    def held(self) -> int:
        """Bytes reserved now, over all models."""
        return self._held

    def by_model(self) -> dict[str, int]:
        """Model -> bytes reserved now (models with none are absent)."""
        return dict(self._by_model)

    def held_for(self, model: str) -> int:
        return self._by_model.get(model, 0)

    def reserve(self, model: str, size: int) -> Reservation:
        """Reserve ``size`` bytes for a request held for ``model``; RetryableError past a bound."""
        size = max(0, size)
        mine = self.held_for(model)
        if mine + size > self.per_model:
            raise RetryableError(
                f"model {model} has no ready replica and its held requests already hold "
                f"{mine} of {self.per_model} bytes",
                delay=RETRY_AFTER_SECONDS,
            )
        if self._held + size > self.total:
            raise RetryableError(
                f"model {model} has no ready replica and held requests already hold "
                f"{self._held} of the gateway's {self.total} bytes",
                delay=RETRY_AFTER_SECONDS,
            )
        self._by_model[model] = mine + size
        self._held += size
        return Reservation(self, model, size)

    def _give_back(self, model: str, size: int) -> None:
        self._held -= size
        left = self._by_model.get(model, 0) - size
        if left > 0:
            self._by_model[model] = left
        else:
            self._by_model.pop(model, None)
