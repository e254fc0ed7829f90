"""The gateway's overcommit helper over real NATS: concurrent misses share one ensure request,
an unreachable agent is a reason (not an exception), and usage goes out batched per replica."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from modelplane.libs import subjects
from modelplane.libs.dataplane.residency import NatsResidency
from modelplane.libs.routes import RouteEndpoint
from modelplane.proto import agent_pb2

REPLICA = RouteEndpoint(server="tight", index=0, http_endpoint="127.0.0.1:1", grpc_endpoint="127.0.0.1:2")


async def test_concurrent_misses_share_one_ensure(nc: NATS) -> None:
    """Ten requests missing one model at once cause one ensure; all see its answer."""
    seen: list[agent_pb2.EnsureLoadedCommand] = []
    arrived, release = asyncio.Event(), asyncio.Event()

    async def agent(msg: Msg) -> None:
        seen.append(agent_pb2.EnsureLoadedCommand.FromString(msg.data))
        arrived.set()
        await release.wait()
        await msg.respond(agent_pb2.CommandReply(accepted=True).SerializeToString())

    sub = await nc.subscribe(subjects.agent_command("tight", 0, "ensure"), cb=agent)
    try:
        residency = NatsResidency(nc, reload_timeout=10)
        waiting = [asyncio.create_task(residency.ensure(REPLICA, "iris", 2, "iris_2")) for _ in range(10)]
        await asyncio.wait_for(arrived.wait(), 5)
        await asyncio.sleep(0.1)  # let any second request arrive (it must not)
        release.set()
        assert await asyncio.gather(*waiting) == [None] * 10
        assert [(c.model, c.version) for c in seen] == [("iris", 2)]
    finally:
        await sub.unsubscribe()


async def test_refusal_and_no_agent_are_reasons(nc: NATS) -> None:
    """A refusal gives the agent's reason; no agent at all says the replica's agent is unreachable."""
    residency = NatsResidency(nc, reload_timeout=5)
    assert (
        await residency.ensure(REPLICA, "iris", 1, "iris_1")
        == "the agent of replica tight.0 is not reachable"
    )

    async def agent(msg: Msg) -> None:
        await msg.respond(
            agent_pb2.CommandReply(accepted=False, reason="model iris_1 is not loaded").SerializeToString()
        )

    sub = await nc.subscribe(subjects.agent_command("tight", 0, "ensure"), cb=agent)
    try:
        assert await residency.ensure(REPLICA, "iris", 1, "iris_1") == "model iris_1 is not loaded"
    finally:
        await sub.unsubscribe()


async def test_usage_is_batched_per_replica(nc: NATS) -> None:
    """Names used since the last flush go to each replica's usage subject once, then reset."""
    other = RouteEndpoint(server="tight", index=1, http_endpoint="127.0.0.1:3", grpc_endpoint="127.0.0.1:4")
    got: dict[str, list[str]] = {}
    both = asyncio.Event()

    async def agents(msg: Msg) -> None:
        got[msg.subject] = list(agent_pb2.ModelUsage.FromString(msg.data).server_model_names)
        if len(got) == 2:
            both.set()

    sub = await nc.subscribe(f"{subjects.AGENT_PREFIX}.tight.*.usage", cb=agents)
    try:
        residency = NatsResidency(nc, reload_timeout=5)
        for name in ("b_1", "a_1", "b_1"):
            residency.used(REPLICA, name)
        residency.used(other, "c_1")
        await residency.flush()
        await nc.flush()
        await asyncio.wait_for(both.wait(), 5)
        assert got == {
            subjects.agent_usage("tight", 0): ["a_1", "b_1"],
            subjects.agent_usage("tight", 1): ["c_1"],
        }
        got.clear()
        await residency.flush()  # nothing used since: nothing sent
        await nc.flush()
        await asyncio.sleep(0.1)
        assert got == {}
    finally:
        await sub.unsubscribe()
