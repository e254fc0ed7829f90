"""Which V2 protocol extensions each replica's server declares (``GET /v2`` -> ``extensions``).

The gateway asks only when a request needs to know (today: a binary-tensor request, to forward
its body as it is to servers that speak the extension, such as Triton, and translate it for those
that do not, such as MLServer 1.7). Answers are remembered per server address for ``ttl_seconds``:
a replica's server rarely changes, but a new process may come up at the same address. Concurrent
first requests share one question. A server that cannot be asked counts as declaring nothing,
so the request is translated, which every server accepts, and the question is asked again after
``retry_seconds``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

import orjson
import structlog

from modelplane.libs.errors import ModelplaneError
from modelplane.libs.routes import RouteEndpoint

log = structlog.get_logger(__name__)

BINARY_TENSOR_DATA: Final = "binary_tensor_data"
DEFAULT_TTL_SECONDS: Final = 300.0
DEFAULT_RETRY_SECONDS: Final = 10.0

# GET /v2 on one replica -> (status, body).
AskServer = Callable[[RouteEndpoint], Awaitable[tuple[int, bytes]]]


class ReplicaExtensions:
    """Remembered ``extensions`` of each replica's server (see the module docstring)."""

    def __init__(
        self,
        ask: AskServer,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ask = ask
        self._ttl = ttl_seconds
        self._retry = retry_seconds
        self._clock = clock
        # address -> (extensions, time after which to ask again)
        self._known: dict[str, tuple[frozenset[str], float]] = {}
        self._asking: dict[str, asyncio.Future[frozenset[str]]] = {}

    async def supports(self, endpoint: RouteEndpoint, extension: str) -> bool:
        return extension in await self.of(endpoint)

    async def of(self, endpoint: RouteEndpoint) -> frozenset[str]:
        address = endpoint.http_endpoint
        known = self._known.get(address)
        if known is not None and known[1] > self._clock():
            return known[0]
        pending = self._asking.get(address)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[frozenset[str]] = asyncio.get_running_loop().create_future()
        self._asking[address] = future
        try:
            extensions, fresh_for = await self._fetch(endpoint)
            self._known[address] = (extensions, self._clock() + fresh_for)
            future.set_result(extensions)
            return extensions
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must log it
            raise
        finally:
            del self._asking[address]

    async def _fetch(self, endpoint: RouteEndpoint) -> tuple[frozenset[str], float]:
        try:
            status, body = await self._ask(endpoint)
        except ModelplaneError as exc:
            log.warning("replica_metadata_unavailable", replica=endpoint.replica, error=str(exc))
            return frozenset(), self._retry
        if status != 200:
            return frozenset(), self._ttl
        try:
            declared = orjson.loads(body).get("extensions", [])
        except (orjson.JSONDecodeError, AttributeError):
            return frozenset(), self._ttl
        if not isinstance(declared, list):
            return frozenset(), self._ttl
        return frozenset(e for e in declared if isinstance(e, str)), self._ttl
