"""The gateway's transport-neutral logic: which model a request names, where it goes, what fails.

Design: the REST and gRPC adapters translate a request into a model name (+ optional version),
ask ``resolve`` for a ``Target`` (the server-side model name and its replicas), and hand
``forward`` a transport-specific coroutine that sends the request to one replica. ``forward``
picks replicas with the model's load-balancing policy (its ``spec.loadBalancing``, carried in
the route: RoundRobin by default, LeastLoad or PrefixHash, one policy object per route key) and
moves on to the next replica only when the call raised ``UpstreamUnreachableError`` (nothing
was answered); any answer from a replica, error or not, goes back to the client as it is, with
one exception: a replica that answers "no such model" for a model its route lists may have
evicted it to make room (overcommit), so the handler asks its agent to reload it and retries
there once (residency.py). Decisions are raised as libs.errors types; the adapters map them to
HTTP statuses and gRPC codes.

In-flight accounting: ``forward`` counts every call to a replica from just before it starts to
its end (``finally``), per route key and replica; LeastLoad and PrefixHash read those counts,
and ``in_flight`` exposes them read-only for load signals. A request's ``RequestHint`` (prompt
prefix, adapter) comes from the adapter that parsed it; V2 requests have none, so PrefixHash
hashes the route key for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, NoReturn, Protocol, TypeVar, cast

import structlog

from modelplane.libs.dataplane.balancers import NO_HINT, Balancer, RequestHint
from modelplane.libs.dataplane.balancers.in_flight import InFlight, InFlightView
from modelplane.libs.dataplane.balancers.least_load import LeastLoad
from modelplane.libs.dataplane.balancers.prefix_hash import PrefixHash
from modelplane.libs.dataplane.holding import RequestHold
from modelplane.libs.dataplane.routing import RouteTable, default_version, find_version
from modelplane.libs.errors import NotFoundError, RetryableError
from modelplane.libs.resources.types import LoadBalancing
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion

log = structlog.get_logger(__name__)

R = TypeVar("R")

SERVER_NAME = "modelplane"
# Suffix Seldon clients may put on the seldon-model header to say "a model, not a pipeline".
_MODEL_SUFFIX = ".model"
# Seconds a client should wait before retrying a model that has no replica yet.
NO_REPLICA_RETRY_AFTER = 1.0


def _package_version() -> str:
    # From the installed distribution: works however the package is laid out on disk.
    try:
        return metadata.version("modelplane")
    except metadata.PackageNotFoundError:
        return "unknown"


class UpstreamUnreachableError(RetryableError):
    """A replica could not be reached (refused, reset before answering): another may be tried."""


class ModelNotResidentError(RetryableError):
    """The replica answered that it has no such model (its agent may have evicted it).

    ``answer()`` gives the replica's own answer back (returns it, or raises it for transports
    whose answers are exceptions), for when the model cannot be reloaded there.
    """

    def __init__(self, message: str, answer: Callable[[], Any]) -> None:
        super().__init__(message)
        self.answer = answer


class ReplicaBusyError(RetryableError):
    """The replica answered 502/503/504: it did not run the request; another replica may.

    ``answer()`` gives that answer back, for when no other replica does better.
    """

    def __init__(self, message: str, answer: Callable[[], Any]) -> None:
        super().__init__(message)
        self.answer = answer


class Residency(Protocol):
    """The agents' side of overcommit, as the handler needs it (residency.NatsResidency)."""

    async def ensure(
        self, endpoint: RouteEndpoint, model: str, version: int, server_model_name: str
    ) -> str | None:
        """Have the replica make the model resident again; None once it is, else why not."""

    def used(self, endpoint: RouteEndpoint, server_model_name: str) -> None:
        """A request for the model on ``endpoint`` was answered."""


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved request destination: one version of a model and the replicas holding it."""

    model: str
    version: int
    server_model_name: str
    endpoints: tuple[RouteEndpoint, ...]
    load_balancing: LoadBalancing = field(default_factory=LoadBalancing)
    # The model's own seconds per inference answer; None = the gateway's default.
    timeout_seconds: float | None = None

    @property
    def balance_key(self) -> str:
        return f"{self.model}:{self.version}"


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    name: str
    version: str
    extensions: tuple[str, ...]


class GatewayHandler:
    """Routing, replica choice, retries and readiness, shared by every transport."""

    def __init__(
        self,
        routes: RouteTable,
        balancer: Balancer,
        *,
        retries: int,
        is_connected: Callable[[], bool],
        residency: Residency | None = None,
        hold: RequestHold | None = None,
    ) -> None:
        self._routes = routes
        self._balancer = balancer
        self._retries = retries
        self._is_connected = is_connected
        self._residency = residency
        self._hold = hold
        self._in_flight = InFlight()
        # LeastLoad/PrefixHash policy per route key, with the settings it was built from.
        self._policies: dict[str, tuple[LoadBalancing, Balancer]] = {}

    # ---- server -------------------------------------------------------------------------------
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """Serving is meaningful once NATS is up and the route table holds a full snapshot."""
        return self._is_connected() and self._routes.synced

    def check_ready(self) -> None:
        if not self._is_connected():
            raise RetryableError("gateway not ready: not connected to NATS")
        if not self._routes.synced:
            raise RetryableError("gateway not ready: route table not loaded yet")

    @property
    def in_flight(self) -> InFlightView:
        """Requests being answered right now, per route key and replica (read-only)."""
        return self._in_flight

    def server_metadata(self) -> ServerMetadata:
        # The binary tensor extension is served by the gateway itself (binary_tensors.py).
        return ServerMetadata(
            name=SERVER_NAME, version=_package_version(), extensions=("binary_tensor_data",)
        )

    # ---- routing ------------------------------------------------------------------------------
    def model_name(self, requested: str, seldon_model: str | None) -> str:
        """The model a request is for: the ``seldon-model`` header wins over the URL/field name."""
        name = (seldon_model or "").strip() or requested
        if name.endswith(_MODEL_SUFFIX):
            name = name[: -len(_MODEL_SUFFIX)]
        return name

    def knows(self, model: str) -> bool:
        """Whether ``model`` has a route (known models may still have no replica)."""
        return self._routes.get(model) is not None

    def resolve(self, model: str, version: str | None = None) -> Target:
        """The version of ``model`` a request goes to; NotFoundError for an unknown model/version."""
        route, chosen = self._chosen(model, version)
        if chosen is None:
            raise RetryableError(f"model {model} has no version available yet", delay=NO_REPLICA_RETRY_AFTER)
        return Target(
            model=model,
            version=chosen.version,
            server_model_name=chosen.server_model_name,
            endpoints=chosen.endpoints,
            load_balancing=route.load_balancing,
            timeout_seconds=route.timeout_seconds or None,
        )

    def check_known(self, model: str, version: str | None = None) -> None:
        """NotFoundError unless ``model`` (and ``version``, if given) has a route; nothing else.

        A known model with no version available yet passes: a request for it is held.
        """
        self._chosen(model, version)

    def _chosen(self, model: str, version: str | None) -> tuple[Route, RouteVersion | None]:
        """The route and the version a request names (None: the default, when there is none)."""
        route = self._routes.get(model)
        if route is None:
            raise NotFoundError(f"model {model} not found")
        if not version:
            return route, default_version(route)
        try:
            chosen = find_version(route, int(version))
        except ValueError:
            chosen = None
        if chosen is None:
            raise NotFoundError(f"model {model} has no version {version}")
        return route, chosen

    @property
    def routes(self) -> RouteTable:
        """The route table (read-only use: listing models)."""
        return self._routes

    def ready_target(self, model: str, version: str | None = None) -> Target:
        """``resolve`` that also requires at least one replica (RetryableError otherwise)."""
        target = self.resolve(model, version)
        if not target.endpoints:
            raise RetryableError(
                f"model {model} version {target.version} has no ready replica",
                delay=NO_REPLICA_RETRY_AFTER,
            )
        return target

    async def wait_ready_target(self, model: str, version: str | None = None) -> Target:
        """``ready_target``, held while the known model has no ready replica (holding.py)."""
        if self._hold is None:
            return self.ready_target(model, version)
        return await self._hold.until_ready(model, lambda: self.ready_target(model, version))

    # ---- forwarding ---------------------------------------------------------------------------
    def policy(self, target: Target) -> Balancer:
        """The load-balancing policy for ``target``'s route key, as its model asks."""
        balancing = target.load_balancing
        if balancing.strategy not in ("LeastLoad", "PrefixHash"):
            return self._balancer
        key = target.balance_key
        known = self._policies.get(key)
        if known is not None and known[0] == balancing:
            return known[1]
        policy: Balancer
        if balancing.strategy == "LeastLoad":
            policy = LeastLoad(self._in_flight)
        else:
            options = balancing.prefix_hash
            policy = PrefixHash(
                self._in_flight,
                mean_load_factor=options.mean_load_factor_percent / 100,
                replication=options.replication,
                prefix_char_length=options.prefix_char_length,
            )
        self._policies[key] = (balancing, policy)
        log.info("balancer_chosen", key=key, policy=policy.describe())
        return policy

    async def forward(
        self,
        target: Target,
        call: Callable[[RouteEndpoint], Awaitable[R]],
        hint: RequestHint = NO_HINT,
        *,
        reroute: bool = True,
    ) -> R:
        """Run ``call`` on a replica chosen by the balancer; retry on another replica only when
        nothing ran there (unreachable, or it answered 502/503/504), never after a model answered.

        ``hint`` carries what the request says about its replica (prompt prefix, adapter).
        ``reroute``: when a replica no longer has the model and cannot get it back (a stale
        route), wait for the route to change and go once more.
        """
        policy = self.policy(target)
        attempts = self._retries + 1
        tried: set[str] = set()
        last: RetryableError | None = None
        busy: ReplicaBusyError | None = None
        for attempt in range(attempts):
            # Re-picked on every attempt (loads change), preferring a replica not tried yet.
            candidates = policy.order(target.balance_key, target.endpoints, hint)
            if not candidates:
                self._no_replica(target, hint)
            endpoint = next((c for c in candidates if c.replica not in tried), candidates[0])
            tried.add(endpoint.replica)
            try:
                result = await self._counted(target, endpoint, call)
            except ModelNotResidentError as missing:
                return await self._reload_and_retry(target, endpoint, call, missing, hint, reroute)
            except (UpstreamUnreachableError, ReplicaBusyError) as exc:
                last = exc
                busy = exc if isinstance(exc, ReplicaBusyError) else None
                log.warning(
                    "replica_retry" if attempt + 1 < attempts else "replica_failed",
                    replica=endpoint.replica,
                    attempt=attempt + 1,
                    attempts=attempts,
                    error=str(exc),
                )
            else:
                if self._residency is not None:
                    self._residency.used(endpoint, target.server_model_name)
                return result
        if busy is not None:
            # The last replica's own answer (e.g. its 503 with its Retry-After) goes back as it is.
            return cast(R, busy.answer())
        raise RetryableError(
            f"no replica of model {target.model} could be reached after {attempts} attempt(s): {last}",
            delay=NO_REPLICA_RETRY_AFTER,
        )

    def _no_replica(self, target: Target, hint: RequestHint) -> NoReturn:
        if hint.adapter:
            raise RetryableError(
                f"model {target.model} version {target.version} has no ready replica "
                f"serving adapter {hint.adapter}",
                delay=NO_REPLICA_RETRY_AFTER,
            )
        raise RetryableError(
            f"model {target.model} version {target.version} has no ready replica",
            delay=NO_REPLICA_RETRY_AFTER,
        )

    async def _reload_and_retry(
        self,
        target: Target,
        endpoint: RouteEndpoint,
        call: Callable[[RouteEndpoint], Awaitable[R]],
        missing: ModelNotResidentError,
        hint: RequestHint,
        reroute: bool,
    ) -> R:
        """The replica lacks a model its route lists: have its agent reload it, then ask again."""
        if self._residency is None:
            return cast(R, missing.answer())
        reason = await self._residency.ensure(
            endpoint, target.model, target.version, target.server_model_name
        )
        if reason is not None:
            log.warning(
                "model_reload_failed", replica=endpoint.replica, model=target.server_model_name, reason=reason
            )
            if not reroute or self._hold is None:
                return cast(R, missing.answer())
            # The agent refuses when the model is no longer assigned there (a scale-down is
            # unloading it; the route update is on its way): the request waits for the new
            # route, as a held request does, rather than getting the replica's 404.
            stale = self._routes.get(target.model)
            fresh = await self._hold.until_ready(target.model, lambda: self._rerouted(target, stale))
            return await self.forward(fresh, call, hint, reroute=False)
        try:
            result = await self._counted(target, endpoint, call)
        except ModelNotResidentError as again:
            return cast(R, again.answer())
        self._residency.used(endpoint, target.server_model_name)
        return result

    def _rerouted(self, target: Target, stale: Route | None) -> Target:
        """``target``'s version as routed now, once the model's route is no longer ``stale``
        (any update counts: the model may come back on the very replica that lost it)."""
        if self._routes.get(target.model) is stale:
            raise RetryableError(
                f"model {target.model} is not on the replica its route names; waiting for the route",
                delay=NO_REPLICA_RETRY_AFTER,
            )
        return self.ready_target(target.model, str(target.version))

    def hold_in_flight(self, target: Target, endpoint: RouteEndpoint) -> Callable[[], None]:
        """Count one more request in flight on ``endpoint`` until the returned function is called.

        For answers that outlive their ``forward`` call (a relayed event stream): the stream
        keeps its replica loaded for balancing until its last chunk. Calling it twice is harmless.
        """
        key, replica = target.balance_key, endpoint.replica
        self._in_flight.begin(key, replica)
        ended = False

        def end() -> None:
            nonlocal ended
            if not ended:
                ended = True
                self._in_flight.end(key, replica)

        return end

    async def _counted(
        self, target: Target, endpoint: RouteEndpoint, call: Callable[[RouteEndpoint], Awaitable[R]]
    ) -> R:
        """``call(endpoint)``, counted in flight for as long as it runs (whatever it raises)."""
        key, replica = target.balance_key, endpoint.replica
        self._in_flight.begin(key, replica)
        try:
            return await call(endpoint)
        finally:
            self._in_flight.end(key, replica)
