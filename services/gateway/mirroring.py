"""Fire-and-forget copies of requests to an experiment's mirror.

Design: the adapter that answers a request hands ``Mirror.send`` the mirror's model name and a
coroutine factory that sends the same request to a resolved ``Target``; ``send`` returns at once
and the copy runs as a named task owned by the mirror's supervisor, so it never delays the
answer and its response is dropped. The mirror model must be ready now (no hold: a copy waits
for nothing) and at most ``max_in_flight`` copies run at once; beyond that, or when the mirror
is not routable, the copy is dropped and counted. ``close()`` cancels copies still running.
Counters (``sent``, ``answered``, ``failed``, ``dropped``) let tests and operators see the share
the mirror got.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import structlog

from modelplane.libs.dataplane.handler import GatewayHandler, Target
from modelplane.libs.errors import ModelplaneError
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import open_inference_pb2 as oip
from modelplane.services.gateway.upstream_grpc import GrpcUpstream

log = structlog.get_logger(__name__)

# Copies running at once before new ones are dropped: mirroring must not exhaust the gateway.
DEFAULT_MAX_IN_FLIGHT: Final = 64

Resolve = Callable[[str], Target]
SendCopy = Callable[[Target], Awaitable[object]]


class Mirror:
    """Sends request copies to mirror models in the background; answers are ignored."""

    def __init__(self, resolve: Resolve, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        # ``GatewayHandler.ready_target`` in production: a ready target or an error, no waiting.
        self._resolve = resolve
        self._max_in_flight = max_in_flight
        self._tasks = TaskSupervisor("gateway-mirror")
        self.sent = 0
        self.answered = 0
        self.failed = 0
        self.dropped = 0

    def counts(self) -> dict[str, int]:
        """Copies by result so far (for /metrics); ``sent`` ones end answered or failed."""
        return {"answered": self.answered, "failed": self.failed, "dropped": self.dropped}

    @property
    def in_flight(self) -> int:
        return self._tasks.running

    def send(self, model: str, copy: SendCopy) -> None:
        """Start a copy of a request to ``model`` and return at once (dropped when not possible)."""
        if self._tasks.running >= self._max_in_flight:
            self.dropped += 1
            log.debug("mirror_dropped", mirror=model, reason="too many copies in flight")
            return
        try:
            target = self._resolve(model)
        except ModelplaneError as exc:
            self.dropped += 1
            log.debug("mirror_dropped", mirror=model, reason=str(exc))
            return
        self._start(model, lambda: copy(target))

    def send_call(self, name: str, call: Callable[[], Awaitable[object]]) -> None:
        """Start ``call`` (a copy to a pipeline or graph, which resolves its own way) and return
        at once; counted and bounded like model copies."""
        if self._tasks.running >= self._max_in_flight:
            self.dropped += 1
            log.debug("mirror_dropped", mirror=name, reason="too many copies in flight")
            return
        self._start(name, call)

    def _start(self, name: str, call: Callable[[], Awaitable[object]]) -> None:
        try:
            self._tasks.spawn(f"mirror:{name}", self._run(name, call))
        except RuntimeError:  # closed: the gateway is shutting down
            self.dropped += 1
            return
        self.sent += 1

    async def _run(self, name: str, call: Callable[[], Awaitable[object]]) -> None:
        try:
            await call()
        except Exception as exc:  # a mirror's failure is never the client's
            self.failed += 1
            log.debug("mirror_failed", mirror=name, error=repr(exc))
        else:
            self.answered += 1

    async def close(self, timeout: float = 5.0) -> None:
        """Cancel the copies still running (idempotent)."""
        await self._tasks.close(timeout)


def grpc_infer_copy(
    handler: GatewayHandler,
    upstream: GrpcUpstream,
    request: oip.ModelInferRequest,
    metadata: list[tuple[str, str]],
) -> SendCopy:
    """A copy of a gRPC infer request, taken now, sent to the mirror's target when run.

    Copied because the adapter rewrites the request in place for its own target."""
    copy = oip.ModelInferRequest()
    copy.CopyFrom(request)

    async def send(target: Target) -> object:
        copy.model_name = target.server_model_name
        copy.model_version = ""
        return await handler.forward(target, lambda endpoint: upstream.model_infer(endpoint, copy, metadata))

    return send
