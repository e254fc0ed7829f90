"""Scheduler behaviour on real NATS: partial scheduling, memory booking, retries, strategies,
server scale requests and rescheduling (drain, scale to zero, delete)."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from modelplane.libs import states, subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.store import TypedBucket
from modelplane.proto import agent_pb2, events_pb2, resources_pb2, state_pb2
from tests.scheduler.test_scheduler_app import (
    Agent,
    agents,
    available_on,
    eventually,
    placement,
    put_model,
    put_server,
    route,
    running_scheduler,
)

MI = 1 << 20


async def scale_request(js: JetStreamContext, server: str) -> state_pb2.ServerScaleRequest | None:
    bucket = await TypedBucket.open(js, subjects.KV_SCALE_REQUESTS, state_pb2.ServerScaleRequest)
    found = await bucket.try_get(server)
    return found.value if found else None


async def server_state(js: JetStreamContext, server: str) -> state_pb2.ServerState | None:
    bucket = await TypedBucket.open(js, subjects.KV_SERVER_STATES, state_pb2.ServerState)
    found = await bucket.try_get(server)
    return found.value if found else None


async def stop_all(*groups: list[Agent]) -> None:
    for group in groups:
        for agent in group:
            await agent.stop()


def latest_state(p: state_pb2.ModelPlacement, replicas: int, min_replicas: int = 0) -> str:
    latest = p.versions[-1]
    return states.derive_model_state(
        [a.state for a in latest.replicas],
        replicas=replicas,
        min_replicas=min_replicas,
        schedule_failed=latest.schedule_failed,
    )


# ---- partial scheduling and scale-up requests --------------------------------------------------
async def test_partial_scheduling_is_available_and_requests_scale_up(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """3 wanted, 2 replicas, minReplicas 1: Available on 2, the reason says 1 is missing, a scale-up
    to 3 is stored and announced; once a third replica joins the model gets it and the request clears."""
    events: list[events_pb2.Event] = []

    async def on_event(msg: Msg) -> None:
        events.append(events_pb2.Event.FromString(msg.data))

    sub = await nc.subscribe(subjects.ALL_SCALE_REQUESTS, cb=on_event)
    await put_server(js, "mlserver", 2)
    started = await agents(nc, js, "mlserver", 2)
    async with running_scheduler(nats_server):
        await put_model(js, "iris", replicas=3, min_replicas=1)

        async def on_two() -> bool:
            return sorted(available_on(await placement(js, "iris"), 1)) == [("mlserver", 0), ("mlserver", 1)]

        await eventually(on_two)
        p = await placement(js, "iris")
        assert p is not None
        assert latest_state(p, 3, 1) == states.MODEL_AVAILABLE
        assert p.versions[-1].reason.startswith("1 of 3 replicas missing: ")
        assert "server mlserver" in p.versions[-1].reason

        async def requested() -> bool:
            return await scale_request(js, "mlserver") is not None and bool(events)

        await eventually(requested)
        request = await scale_request(js, "mlserver")
        assert request is not None
        assert (request.current_replicas, request.target_replicas, request.direction) == (
            2,
            3,
            state_pb2.SCALE_UP,
        )
        assert request.reason == "model iris has 2 of 3 replicas"
        assert request.requested_at.endswith("Z")
        assert (events[0].type, events[0].kind, events[0].name) == ("scale_up", "Server", "mlserver")
        assert events[0].attributes["target_replicas"] == "3"

        # The autoscaler's part, by hand: the server grows and its third replica registers.
        await put_server(js, "mlserver", 3)
        [third] = [Agent(nc, js, "mlserver", 2)]
        await third.start()

        async def on_three() -> bool:
            return len(available_on(await placement(js, "iris"), 1)) == 3

        await eventually(on_three)

        async def cleared() -> bool:
            return await scale_request(js, "mlserver") is None and events[-1].type == "scale_cleared"

        await eventually(cleared)
        p = await placement(js, "iris")
        assert p is not None
        assert p.versions[-1].reason == ""
    await sub.unsubscribe()
    await stop_all(started, [third])


async def test_scale_up_target_is_capped_by_max_replicas(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """The scale-up target is min(largest desired replicas, server maxReplicas)."""
    await put_server(js, "mlserver", 1, max_replicas=2)
    started = await agents(nc, js, "mlserver", 1)
    async with running_scheduler(nats_server):
        await put_model(js, "iris", replicas=4, min_replicas=1)

        async def requested() -> bool:
            r = await scale_request(js, "mlserver")
            return r is not None and r.target_replicas == 2

        await eventually(requested)
    await stop_all(started)


async def test_empty_replica_requests_scale_down_until_satisfied(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """A replica emptied by a scale-in asks for max(minReplicas, expected - empty); the request
    clears once the server has that many replicas."""
    await put_server(js, "mlserver", 2)
    started = await agents(nc, js, "mlserver", 2)
    async with running_scheduler(nats_server):
        await put_model(js, "iris", replicas=2)

        async def on_two() -> bool:
            return len(available_on(await placement(js, "iris"), 1)) == 2

        await eventually(on_two)
        assert await scale_request(js, "mlserver") is None
        await put_model(js, "iris", replicas=1)

        async def down() -> bool:
            r = await scale_request(js, "mlserver")
            return r is not None and r.direction == state_pb2.SCALE_DOWN

        await eventually(down)
        request = await scale_request(js, "mlserver")
        assert request is not None
        assert (request.current_replicas, request.target_replicas, request.reason) == (
            2,
            1,
            "1 replica is empty",
        )

        await put_server(js, "mlserver", 1)

        async def cleared() -> bool:
            return await scale_request(js, "mlserver") is None

        await eventually(cleared)
    await stop_all(started)


async def test_scale_down_never_goes_below_min_replicas(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """With minReplicas 2 an empty replica of a 2-replica server asks for nothing."""
    await put_server(js, "mlserver", 2, min_replicas=2)
    started = await agents(nc, js, "mlserver", 2)
    async with running_scheduler(nats_server) as app:
        await put_model(js, "iris", replicas=2)

        async def on_two() -> bool:
            return len(available_on(await placement(js, "iris"), 1)) == 2

        await eventually(on_two)
        await put_model(js, "iris", replicas=1)

        async def one_empty() -> bool:
            s = await server_state(js, "mlserver")
            return s is not None and sorted(len(r.models) for r in s.replicas) == [0, 1]

        await eventually(one_empty)
        assert app.handler is not None
        assert app.handler.scale_requests == {}
        assert await scale_request(js, "mlserver") is None
    await stop_all(started)


# ---- memory bookkeeping ------------------------------------------------------------------------
async def test_memory_is_reserved_until_loaded_and_published(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """A load in flight reserves its memory (so a second model cannot take it); once loaded the
    memory counts as loaded; ServerState shows total, reserved, loaded and available."""
    await put_server(js, "mlserver", 1)
    [agent] = await agents(nc, js, "mlserver", 1, memory_bytes=100 * MI)
    agent.load_outcome = None  # hold every load in LoadRequested
    async with running_scheduler(nats_server):
        await put_model(js, "first", memory_bytes=60 * MI)

        async def reserved() -> bool:
            s = await server_state(js, "mlserver")
            return s is not None and bool(s.replicas) and s.replicas[0].reserved_bytes == 60 * MI

        await eventually(reserved)
        s = await server_state(js, "mlserver")
        assert s is not None
        r = s.replicas[0]
        assert (r.memory_bytes, r.loaded_bytes, r.available_bytes, list(r.models)) == (
            100 * MI,
            0,
            100 * MI,
            ["first_1"],
        )

        await put_model(js, "second", memory_bytes=60 * MI)

        async def rejected() -> bool:
            p = await placement(js, "second")
            return p is not None and p.versions[-1].schedule_failed

        await eventually(rejected)
        p = await placement(js, "second")
        assert p is not None
        assert "0 of 1 replicas have enough memory (needs 60Mi)" in p.versions[-1].reason

        await agent.report("first", 1, agent_pb2.OUTCOME_LOADED)

        async def loaded() -> bool:
            s = await server_state(js, "mlserver")
            return s is not None and s.replicas[0].loaded_bytes == 60 * MI

        await eventually(loaded)
        s = await server_state(js, "mlserver")
        assert s is not None
        assert (s.replicas[0].reserved_bytes, s.replicas[0].available_bytes) == (0, 40 * MI)
    await agent.stop()


# ---- retries -----------------------------------------------------------------------------------
async def test_failing_load_moves_to_another_replica(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """A version whose load fails on one replica is loaded on another suitable replica."""
    await put_server(js, "mlserver", 2)
    broken, healthy = await agents(nc, js, "mlserver", 2)
    broken.load_outcome = agent_pb2.OUTCOME_LOAD_FAILED
    async with running_scheduler(nats_server):
        await put_model(js, "iris")

        async def on_healthy() -> bool:
            p = await placement(js, "iris")
            return (
                available_on(p, 1) == [("mlserver", 1)]
                and p is not None
                and len(p.versions[-1].replicas) == 1
            )

        await eventually(on_healthy)
        assert broken.loads == [("iris", 1)]
        assert broken.unloads == [("iris", 1)]
    await stop_all([broken, healthy])


async def test_failing_load_is_retried_periodically(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """With no other replica, a failed load is retried on the same replica by the backoff."""
    await put_server(js, "mlserver", 1)
    [agent] = await agents(nc, js, "mlserver", 1)
    agent.load_outcome = agent_pb2.OUTCOME_LOAD_FAILED
    async with running_scheduler(nats_server, retry_backoff_initial=0.1, retry_backoff_max=0.2):
        await put_model(js, "iris")

        async def retried() -> bool:
            return len(agent.loads) >= 3

        await eventually(retried)
        agent.load_outcome = agent_pb2.OUTCOME_LOADED

        async def recovered() -> bool:
            return available_on(await placement(js, "iris"), 1) == [("mlserver", 0)]

        await eventually(recovered)
    await agent.stop()


async def test_capacity_change_retries_unplaced_model_at_once(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """A ScheduleFailed model is placed as soon as a capable replica registers (no backoff wait)."""
    await put_server(js, "mlserver", 1)
    await put_server(js, "small", 1)
    started = await agents(nc, js, "mlserver", 1)
    # A backoff far beyond the test's deadline: only the capacity change can place the model.
    async with running_scheduler(nats_server, retry_backoff_initial=3600, retry_backoff_max=3600):
        await put_model(js, "custom", requirements=("custom-cap",))

        async def failed() -> bool:
            p = await placement(js, "custom")
            return p is not None and p.versions[-1].schedule_failed

        await eventually(failed)
        small = Agent(nc, js, "small", 0, capabilities=("mlserver", "custom-cap"))
        await small.start()

        async def placed() -> bool:
            return available_on(await placement(js, "custom"), 1) == [("small", 0)]

        await eventually(placed)
    await stop_all(started, [small])


@pytest.mark.parametrize(("strategy", "expected"), [("best-fit", "alpha"), ("spread", "beta")])
async def test_server_strategy_decides_between_fitting_servers(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS, strategy: str, expected: str
) -> None:
    """best-fit packs onto the fuller server, spread onto the emptier one (deterministically)."""
    await put_server(js, "alpha", 1)
    await put_server(js, "beta", 1)
    alpha = await agents(nc, js, "alpha", 1)
    beta = await agents(nc, js, "beta", 1)
    async with running_scheduler(nats_server, server_strategy=strategy):
        # Pinned so the first model's place does not depend on the strategy.
        bucket = await TypedBucket.open(js, subjects.KV_MODELS, resources_pb2.Model)
        await bucket.put(
            "big",
            resources_pb2.Model(
                meta=resources_pb2.ObjectMeta(name="big", generation=1),
                spec=resources_pb2.ModelSpec(
                    storage_uri="file:///m", replicas=1, memory_bytes=500 * MI, server="alpha"
                ),
            ),
        )

        async def big_on_alpha() -> bool:
            return available_on(await placement(js, "big"), 1) == [("alpha", 0)]

        await eventually(big_on_alpha)
        await put_model(js, "small")

        async def placed() -> bool:
            return bool(available_on(await placement(js, "small"), 1))

        await eventually(placed)
        assert available_on(await placement(js, "small"), 1) == [(expected, 0)]
    await stop_all(alpha, beta)


# ---- rescheduling ------------------------------------------------------------------------------
async def test_draining_replica_is_replaced_before_it_is_unloaded(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """A draining replica keeps serving (Draining, still routed) until the model is Available on
    another replica; only then is it unloaded from the draining one."""
    journal: list[str] = []
    await put_server(js, "mlserver", 2)
    first, second = await agents(nc, js, "mlserver", 2, journal=journal)
    second.load_outcome = None  # hold the replacement's load so the draining state can be seen
    async with running_scheduler(nats_server):
        await put_model(js, "iris")

        async def on_first() -> bool:
            return available_on(await placement(js, "iris"), 1) == [("mlserver", 0)]

        await eventually(on_first)
        first.draining = True
        await first.register()

        async def draining() -> bool:
            p = await placement(js, "iris")
            states_now = {(a.index, a.state) for a in p.versions[-1].replicas} if p else set()
            return states_now == {(0, states.DRAINING), (1, states.LOAD_REQUESTED)}

        await eventually(draining)
        r = await route(js, "iris")
        assert r is not None
        assert [e.index for e in r.versions[0].endpoints] == [0]
        assert first.unloads == []

        await second.report("iris", 1, agent_pb2.OUTCOME_LOADED)

        async def moved() -> bool:
            p = await placement(js, "iris")
            return p is not None and [(a.index, a.state) for a in p.versions[-1].replicas] == [
                (1, states.AVAILABLE)
            ]

        await eventually(moved)
        assert journal == ["load iris_1 @mlserver.0", "load iris_1 @mlserver.1", "unload iris_1 @mlserver.0"]
        r = await route(js, "iris")
        assert r is not None
        assert [e.index for e in r.versions[0].endpoints] == [1]
    await stop_all([first, second])


@pytest.mark.parametrize("how", ["scaled-to-zero", "deleted"])
async def test_model_moves_off_a_server_going_away_as_a_new_version(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS, how: str
) -> None:
    """A server scaled to 0 or deleted: its model moves to another server as version 2, loaded
    before version 1 is unloaded."""
    journal: list[str] = []
    await put_server(js, "alpha", 1)
    await put_server(js, "beta", 1)
    alpha = await agents(nc, js, "alpha", 1, journal=journal)
    beta = await agents(nc, js, "beta", 1, journal=journal)
    async with running_scheduler(nats_server):
        await put_model(js, "iris")

        async def on_alpha() -> bool:
            return available_on(await placement(js, "iris"), 1) == [("alpha", 0)]

        await eventually(on_alpha)
        if how == "deleted":
            servers = await TypedBucket.open(js, subjects.KV_SERVERS, resources_pb2.Server)
            await servers.delete("alpha")
        else:
            await put_server(js, "alpha", 0)

        async def moved() -> bool:
            p = await placement(js, "iris")
            return (
                p is not None
                and [v.version for v in p.versions] == [2]
                and available_on(p, 2) == [("beta", 0)]
            )

        await eventually(moved)
        assert journal == ["load iris_1 @alpha.0", "load iris_2 @beta.0", "unload iris_1 @alpha.0"]
        r = await route(js, "iris")
        assert r is not None
        assert [v.server_model_name for v in r.versions] == ["iris_2"]
    await stop_all(alpha, beta)


async def test_replica_gone_with_no_room_on_its_server_moves_as_new_version(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """When the only replica of a model's server disappears the model lands on another server as
    a new version."""
    await put_server(js, "alpha", 1)
    await put_server(js, "beta", 1)
    [alpha] = await agents(nc, js, "alpha", 1)
    [beta] = await agents(nc, js, "beta", 1)
    async with running_scheduler(nats_server):
        await put_model(js, "iris")

        async def on_alpha() -> bool:
            return available_on(await placement(js, "iris"), 1) == [("alpha", 0)]

        await eventually(on_alpha)
        await alpha.deregister()

        async def moved() -> bool:
            p = await placement(js, "iris")
            return p is not None and available_on(p, 2) == [("beta", 0)]

        await eventually(moved)
    await beta.stop()


async def test_under_replicated_model_takes_back_a_replica_whose_load_once_failed(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """A partially placed model is not kept short forever by a replica where one load failed:
    once the backoff retries it and it loads, the model holds both replicas."""
    await put_server(js, "mlserver", 2)
    flaky, steady = await agents(nc, js, "mlserver", 2)
    flaky.load_outcome = agent_pb2.OUTCOME_LOAD_FAILED
    async with running_scheduler(nats_server, retry_backoff_initial=0.1, retry_backoff_max=0.2):
        # 3 desired on a 2-replica server: only partial placements exist.
        await put_model(js, "iris", replicas=3, min_replicas=1)

        async def failed_once() -> bool:
            return len(flaky.loads) >= 1 and available_on(await placement(js, "iris"), 1) == [("mlserver", 1)]

        await eventually(failed_once)
        flaky.load_outcome = agent_pb2.OUTCOME_LOADED

        async def both() -> bool:
            return sorted(available_on(await placement(js, "iris"), 1)) == [("mlserver", 0), ("mlserver", 1)]

        await eventually(both)
    await stop_all([flaky, steady])
