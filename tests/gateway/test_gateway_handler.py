"""The transport-neutral handler: model naming, resolution errors, replica choice and retries."""

from __future__ import annotations

import asyncio

import pytest

from modelplane.libs.dataplane.balancers import RequestHint
from modelplane.libs.dataplane.balancers.round_robin import RoundRobin
from modelplane.libs.dataplane.handler import (
    GatewayHandler,
    ModelNotResidentError,
    ReplicaBusyError,
    UpstreamUnreachableError,
)
from modelplane.libs.dataplane.holding import RequestHold
from modelplane.libs.dataplane.routing import RouteTable
from modelplane.libs.errors import NotFoundError, RetryableError
from modelplane.libs.resources.types import LoadBalancing, PrefixHashOptions
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion

A = RouteEndpoint("s", 0, "a:1", "a:2")
B = RouteEndpoint("s", 1, "b:1", "b:2")


def _handler(*routes: Route, retries: int = 2, connected: bool = True) -> GatewayHandler:
    table = RouteTable()
    table.begin_sync()
    for route in routes:
        table.put(route)
    table.end_sync()
    return GatewayHandler(table, RoundRobin(), retries=retries, is_connected=lambda: connected)


IRIS = Route("iris", (RouteVersion(2, "iris_2", (A, B)), RouteVersion(1, "iris_1", (A,))))


def test_seldon_header_wins_and_model_suffix_is_dropped() -> None:
    """seldon-model overrides the URL name; a trailing ".model" is Seldon's type marker."""
    handler = _handler()
    assert handler.model_name("url-name", None) == "url-name"
    assert handler.model_name("url-name", "iris") == "iris"
    assert handler.model_name("url-name", "iris.model") == "iris"
    assert handler.model_name("url-name", "  ") == "url-name"


def test_resolve_defaults_to_first_version_and_finds_numbered_ones() -> None:
    """No version -> versions[0]; "1" -> version 1 with its server-side name."""
    handler = _handler(IRIS)
    assert handler.resolve("iris").server_model_name == "iris_2"
    assert handler.resolve("iris", "1").server_model_name == "iris_1"


@pytest.mark.parametrize(
    ("model", "version", "text"),
    [("nope", None, "model nope"), ("iris", "5", "version 5"), ("iris", "x", "version x")],
)
def test_unknown_model_or_version_is_not_found_naming_it(model: str, version: str | None, text: str) -> None:
    """Unknown names are NotFoundError with the name in the message."""
    with pytest.raises(NotFoundError, match=text):
        _handler(IRIS).resolve(model, version)


def test_no_endpoints_is_retryable() -> None:
    """A known version without replicas asks the client to retry later."""
    handler = _handler(Route("empty", (RouteVersion(1, "empty_1", ()),)))
    assert handler.resolve("empty").endpoints == ()
    with pytest.raises(RetryableError, match="no ready replica"):
        handler.ready_target("empty")


def test_ready_needs_nats_and_a_synced_table() -> None:
    """Readiness is false while NATS is down or the route replay has not finished."""
    assert _handler().ready()
    assert not _handler(connected=False).ready()
    unsynced = GatewayHandler(RouteTable(), RoundRobin(), retries=0, is_connected=lambda: True)
    assert not unsynced.ready()
    with pytest.raises(RetryableError, match="route table"):
        unsynced.check_ready()


async def test_forward_round_robins_over_replicas() -> None:
    """Successive requests go to successive replicas."""
    handler = _handler(IRIS)
    target = handler.resolve("iris")

    async def call(endpoint: RouteEndpoint) -> str:
        return endpoint.http_endpoint

    assert [await handler.forward(target, call) for _ in range(3)] == ["a:1", "b:1", "a:1"]


async def test_forward_moves_on_only_when_unreachable() -> None:
    """An unreachable replica is skipped; an answered error is not retried."""
    handler = _handler(IRIS)
    target = handler.resolve("iris")
    tried: list[str] = []

    async def first_down(endpoint: RouteEndpoint) -> str:
        tried.append(endpoint.http_endpoint)
        if endpoint is A:
            raise UpstreamUnreachableError("refused")
        return endpoint.http_endpoint

    assert await handler.forward(target, first_down) == "b:1"
    assert tried == ["a:1", "b:1"]

    tried.clear()

    async def answered_error(endpoint: RouteEndpoint) -> str:
        tried.append(endpoint.http_endpoint)
        raise ValueError("replica said no")

    with pytest.raises(ValueError, match="replica said no"):
        await handler.forward(target, answered_error)
    assert len(tried) == 1


async def test_forward_gives_up_after_configured_retries() -> None:
    """With every replica down, 1 + retries attempts are made, then a retryable error."""
    handler = _handler(IRIS, retries=3)
    target = handler.resolve("iris")
    attempts = 0

    async def down(endpoint: RouteEndpoint) -> str:
        nonlocal attempts
        attempts += 1
        raise UpstreamUnreachableError("refused")

    with pytest.raises(RetryableError, match="after 4 attempt"):
        await handler.forward(target, down)
    assert attempts == 4


async def test_a_busy_answer_is_retried_on_another_replica_and_repicked_each_time() -> None:
    """502/503/504 from a replica moves on to a replica not tried yet; the request succeeds there."""
    handler = _handler(IRIS, retries=3)
    target = handler.resolve("iris")
    tried: list[str] = []

    async def first_busy(endpoint: RouteEndpoint) -> str:
        tried.append(endpoint.replica)
        if not tried[1:]:
            raise ReplicaBusyError("replica answered 503", lambda: "busy answer")
        return endpoint.replica

    answer = await handler.forward(target, first_busy)
    assert len(tried) == 2
    assert tried[0] != tried[1], "the retry goes to the other replica"
    assert answer == tried[1]


async def test_when_every_attempt_is_busy_the_last_answer_goes_back() -> None:
    """After 1 + retries busy answers, the client gets the last replica's own answer."""
    handler = _handler(IRIS, retries=3)
    target = handler.resolve("iris")
    attempts = 0

    async def busy(endpoint: RouteEndpoint) -> str:
        nonlocal attempts
        attempts += 1
        raise ReplicaBusyError("replica answered 503", lambda: f"503 from {endpoint.replica}")

    answer = await handler.forward(target, busy)
    assert attempts == 4
    assert answer.startswith("503 from s.")


async def test_forward_counts_calls_in_flight_until_they_end() -> None:
    """A call counts for its replica while it runs, and stops counting however it ends."""
    handler = _handler(IRIS)
    target = handler.resolve("iris")
    seen: list[int] = []

    async def call(endpoint: RouteEndpoint) -> str:
        seen.append(handler.in_flight.of(target.balance_key, endpoint.replica))
        raise ValueError("replica said no")

    with pytest.raises(ValueError, match="said no"):
        await handler.forward(target, call)
    assert seen == [1]
    assert handler.in_flight.by_replica() == {}


def _route(balancing: LoadBalancing, *endpoints: RouteEndpoint) -> Route:
    return Route("llm", (RouteVersion(1, "llm_1", endpoints),), balancing)


async def test_least_load_model_sends_the_next_request_to_the_idle_replica() -> None:
    """With loadBalancing LeastLoad, a request goes to the replica not busy with another one."""
    handler = _handler(_route(LoadBalancing("LeastLoad"), A, B))
    target = handler.resolve("llm")
    release = asyncio.Event()
    busy = asyncio.Event()

    async def slow(endpoint: RouteEndpoint) -> str:
        busy.set()
        await release.wait()
        return endpoint.http_endpoint

    async def fast(endpoint: RouteEndpoint) -> str:
        return endpoint.http_endpoint

    first = asyncio.ensure_future(handler.forward(target, slow))
    await busy.wait()
    try:
        busy_replica = next(iter(handler.in_flight.by_replica()))
        idle = "b:1" if busy_replica == A.replica else "a:1"
        assert [await handler.forward(target, fast) for _ in range(3)] == [idle] * 3
    finally:
        release.set()
        await first


async def test_prefix_hash_model_keeps_one_prefix_on_one_replica() -> None:
    """With loadBalancing PrefixHash, requests with the same prefix hint go to the same replica."""
    handler = _handler(_route(LoadBalancing("PrefixHash", PrefixHashOptions(replication=16)), A, B))
    target = handler.resolve("llm")
    assert handler.policy(target).describe().startswith("PrefixHash: consistent hashing")

    async def call(endpoint: RouteEndpoint) -> str:
        return endpoint.http_endpoint

    for prefix in ("system prompt one", "another conversation", "a third"):
        hint = RequestHint(prefix=prefix)
        assert len({await handler.forward(target, call, hint) for _ in range(5)}) == 1


def test_each_route_key_gets_the_policy_its_model_asks_for() -> None:
    """RoundRobin by default; a changed loadBalancing on the route gets a new policy object."""
    handler = _handler(IRIS)
    assert handler.policy(handler.resolve("iris")).name == "RoundRobin"
    handler = _handler(_route(LoadBalancing("LeastLoad"), A))
    target = handler.resolve("llm")
    policy = handler.policy(target)
    assert policy.name == "LeastLoad"
    assert handler.policy(target) is policy
    changed = _handler(_route(LoadBalancing("PrefixHash"), A)).resolve("llm")
    assert handler.policy(changed).name == "PrefixHash"


async def test_a_missing_adapter_is_retryable_naming_it() -> None:
    """No replica serving the requested adapter: a retryable error that names the adapter."""
    handler = _handler(_route(LoadBalancing("PrefixHash"), A, B))

    async def call(endpoint: RouteEndpoint) -> str:
        return endpoint.http_endpoint

    with pytest.raises(RetryableError, match="adapter lora"):
        await handler.forward(handler.resolve("llm"), call, RequestHint(adapter="lora"))


class RefusingAgents:
    """Agents that cannot make the model resident again (it is being unloaded there)."""

    async def ensure(self, endpoint: RouteEndpoint, model: str, version: int, server_model_name: str) -> str:
        return f"model {server_model_name} is not loaded on this replica"

    def used(self, endpoint: RouteEndpoint, server_model_name: str) -> None:
        pass


async def test_a_stale_route_to_a_replica_unloading_the_model_waits_for_the_new_route() -> None:
    """The route lists a replica that is unloading the model (its agent refuses to reload): the
    request waits for the route update and is answered by the replica it names, not with the
    stale replica's 404. Without a hold the replica's answer goes back as before."""
    gone = RouteEndpoint("s", 0, "127.0.0.1:1", "127.0.0.1:2")
    fresh = RouteEndpoint("s", 1, "127.0.0.1:3", "127.0.0.1:4")
    table = RouteTable()
    table.put(Route("iris", (RouteVersion(1, "iris_1", (gone,)),)))
    hold = RequestHold(table, hold_seconds=30, max_held=10)
    handler = GatewayHandler(
        table, RoundRobin(), retries=0, is_connected=lambda: True, residency=RefusingAgents(), hold=hold
    )

    async def call(endpoint: RouteEndpoint) -> str:
        if endpoint == gone:
            raise ModelNotResidentError("no such model", lambda: "404 from s.0")
        return f"answered by {endpoint.replica}"

    target = handler.ready_target("iris")
    answering = asyncio.create_task(handler.forward(target, call), name="forward")
    await asyncio.sleep(0.05)
    assert not answering.done()
    table.put(Route("iris", (RouteVersion(1, "iris_1", (fresh,)),)))
    assert await asyncio.wait_for(answering, 5) == "answered by s.1"
    unheld = GatewayHandler(
        table, RoundRobin(), retries=0, is_connected=lambda: True, residency=RefusingAgents()
    )
    assert await unheld.forward(target, call) == "404 from s.0"
