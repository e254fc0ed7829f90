"""Leader lease on a real nats-server: one leader, takeover after ttl, fencing by time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.lease import LeaderElection, LeaseConfig, serve_while_leader
from modelplane.libs.store import TypedBucket, connect
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import lease_pb2

# Short timings so takeovers happen within a couple of seconds.
TTL, RENEW, MARGIN = 1.5, 0.2, 0.5


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    """Poll ``check`` until it is true or the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.02)


def config(holder: str, ttl: float = TTL) -> LeaseConfig:
    return LeaseConfig(name="test", holder=holder, ttl=ttl, renew_interval=RENEW, margin=MARGIN)


@asynccontextmanager
async def contender(
    nats_server: EmbeddedNats, holder: str, ttl: float = TTL
) -> AsyncIterator[tuple[LeaderElection, NATS]]:
    """An election on its own NATS connection (closing that connection cuts it off)."""
    nc = await connect(nats_server.url, name=holder)
    bucket = await TypedBucket.open(nc.jetstream(), subjects.KV_LEASES, lease_pb2.Lease)
    election = LeaderElection(bucket, config(holder, ttl))
    try:
        await election.start()
        yield election, nc
    finally:
        await election.close()
        await nc.close()


@asynccontextmanager
async def at_most_one_leader(elections: Sequence[LeaderElection]) -> AsyncIterator[None]:
    """Check, every few milliseconds while the block runs, that no two elections lead at once."""
    overlaps: list[list[str]] = []

    async def sample() -> None:
        while True:
            leaders = [e.config.holder for e in elections if e.is_leader]
            if len(leaders) > 1:
                overlaps.append(leaders)
            await asyncio.sleep(0.005)

    supervisor = TaskSupervisor("test")
    supervisor.spawn("sampler", sample())
    try:
        yield
    finally:
        await supervisor.close()
    assert overlaps == []


async def lease_value(js: JetStreamContext) -> lease_pb2.Lease | None:
    bucket = await TypedBucket.open(js, subjects.KV_LEASES, lease_pb2.Lease)
    found = await bucket.try_get("test")
    return found.value if found else None


def test_config_rejects_margin_not_shorter_than_ttl() -> None:
    """A margin as long as the ttl would leave the holder no time to lead; it is refused."""
    with pytest.raises(ValueError, match="margin"):
        LeaseConfig(name="x", holder="a", ttl=2, renew_interval=0.1, margin=2)


def test_config_needs_two_renewals_before_step_down() -> None:
    """A renew interval longer than half the hold time is refused (one lost renewal would fence)."""
    with pytest.raises(ValueError, match="renew_interval"):
        LeaseConfig(name="x", holder="a", ttl=5, renew_interval=2.5, margin=1)


async def test_one_of_two_contenders_wins_and_keeps_it(
    nats_server: EmbeddedNats, js: JetStreamContext
) -> None:
    """Exactly one of two contenders leads; while it renews, the other stays standby past the ttl."""
    async with (
        contender(nats_server, "a") as (a, _),
        contender(nats_server, "b") as (b, _),
        at_most_one_leader([a, b]),
    ):
        await eventually(lambda: a.is_leader or b.is_leader)
        leader, standby = (a, b) if a.is_leader else (b, a)
        first = await lease_value(js)
        assert first is not None
        assert first.holder == leader.config.holder
        assert first.term == 1
        bucket = await TypedBucket.open(js, subjects.KV_LEASES, lease_pb2.Lease)
        start = (await bucket.get("test")).revision

        async def renewed_beyond_ttl() -> bool:
            # Every renewal bumps the revision; 3 x ttl / renew_interval of them span 3 ttls.
            return (await bucket.get("test")).revision - start >= 3 * TTL / RENEW

        await eventually(renewed_beyond_ttl, timeout=30)
        assert leader.is_leader
        assert not standby.is_leader
        assert not leader.lost.is_set()


async def test_standby_takes_over_after_ttl_when_leader_vanishes(
    nats_server: EmbeddedNats, js: JetStreamContext
) -> None:
    """A leader cut off without releasing (as by kill -9) is replaced once the ttl has passed."""
    async with contender(nats_server, "a") as (a, nc_a):
        await eventually(lambda: a.is_leader)
        async with contender(nats_server, "b") as (b, _), at_most_one_leader([a, b]):
            # Simulate kill -9: the connection goes, then the tasks stop, nothing is released.
            await nc_a.close()
            await a.close()
            await eventually(lambda: b.is_leader, timeout=TTL + 5)
            lease = await lease_value(js)
            assert lease is not None
            assert lease.holder == "b"
            assert lease.term == 2


async def test_clean_release_hands_over_without_waiting_for_ttl(
    nats_server: EmbeddedNats, js: JetStreamContext
) -> None:
    """Closing the leader deletes its lease, so the standby leads well before a (long) ttl."""
    long_ttl = 120.0
    async with contender(nats_server, "a", ttl=long_ttl) as (a, _):
        await eventually(lambda: a.is_leader)
        async with contender(nats_server, "b", ttl=long_ttl) as (b, _), at_most_one_leader([a, b]):
            await a.close()
            assert a.lost.is_set()
            assert not a.is_leader
            # The deadline is far below the ttl: only a release can explain the takeover.
            await eventually(lambda: b.is_leader, timeout=10)
            lease = await lease_value(js)
            assert lease is not None
            assert lease.holder == "b"


async def test_leader_that_cannot_renew_steps_down_before_takeover(
    nats_server: EmbeddedNats, js: JetStreamContext
) -> None:
    """A leader whose renewals fail gives up leadership before the standby is allowed to take it."""
    async with contender(nats_server, "a") as (a, nc_a):
        await eventually(lambda: a.is_leader)
        async with contender(nats_server, "b") as (b, _), at_most_one_leader([a, b]):
            order: list[str] = []

            async def note(name: str, event: Awaitable[object]) -> None:
                await event
                order.append(name)

            await nc_a.close()  # NATS unreachable for a; its election keeps running
            async with asyncio.TaskGroup() as group:
                group.create_task(note("a stepped down", a.lost.wait()))
                group.create_task(note("b elected", b.wait_until_leader()))
            assert order == ["a stepped down", "b elected"]
            assert not a.is_leader
            assert b.is_leader


async def test_serve_while_leader_runs_one_term_at_a_time(
    nats_server: EmbeddedNats, js: JetStreamContext
) -> None:
    """Two campaigners: one term runs; cancelling its campaigner ends the term and the other starts one."""
    bucket = await TypedBucket.open(js, subjects.KV_LEASES, lease_pb2.Lease)
    log: list[str] = []

    def term(holder: str) -> Callable[[LeaderElection], AbstractAsyncContextManager[None]]:
        @asynccontextmanager
        async def run(election: LeaderElection) -> AsyncIterator[None]:
            log.append(f"{holder} start term {election.term}")
            try:
                yield
            finally:
                log.append(f"{holder} end")

        return run

    supervisor = TaskSupervisor("test")
    try:
        first = supervisor.spawn("a", serve_while_leader(bucket, config("a"), term("a")))
        await eventually(lambda: log == ["a start term 1"])
        supervisor.spawn("b", serve_while_leader(bucket, config("b"), term("b")))
        first.cancel()
        await eventually(lambda: len(log) == 3)
        assert log == ["a start term 1", "a end", "b start term 2"]
    finally:
        await supervisor.close()
    assert log[-1] == "b end"
