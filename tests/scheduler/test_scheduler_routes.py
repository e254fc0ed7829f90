"""Route building: the route the scheduler writes carries the Model's spec.loadBalancing."""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.resources.convert import model_to_pb
from modelplane.libs.resources.types import LoadBalancing, Meta, Model, ModelSpec, PrefixHashOptions
from modelplane.libs.routes import route_from_pb
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2
from tests.scheduler.test_scheduler_app import (
    agents,
    available_on,
    eventually,
    placement,
    put_server,
    route,
    running_scheduler,
)


async def put_balanced_model(js: JetStreamContext, generation: int, balancing: LoadBalancing) -> None:
    bucket = await TypedBucket.open(js, subjects.KV_MODELS, resources_pb2.Model)
    spec = ModelSpec(
        storage_uri="file:///models/llm",
        requirements=("sklearn",),
        memory_bytes=1 << 20,
        load_balancing=balancing,
    )
    await bucket.put("llm", model_to_pb(Model(Meta("llm", generation=generation), spec)))


async def test_route_carries_load_balancing_and_follows_changes_without_a_new_version(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """LeastLoad reaches the route; switching to PrefixHash updates the route and keeps version 1."""
    await put_server(js, "mlserver", 1)
    [agent] = await agents(nc, js, "mlserver", 1)
    async with running_scheduler(nats_server):
        await put_balanced_model(js, 1, LoadBalancing("LeastLoad"))

        async def placed() -> bool:
            return available_on(await placement(js, "llm"), 1) == [("mlserver", 0)]

        await eventually(placed)
        msg = await route(js, "llm")
        assert msg is not None
        assert route_from_pb("llm", msg).load_balancing == LoadBalancing("LeastLoad")

        prefix_hash = LoadBalancing("PrefixHash", PrefixHashOptions(prefix_char_length=40))
        await put_balanced_model(js, 2, prefix_hash)

        async def switched() -> bool:
            found = await route(js, "llm")
            return found is not None and route_from_pb("llm", found).load_balancing == prefix_hash

        await eventually(switched)
        found = await route(js, "llm")
        assert found is not None
        assert [v.version for v in found.versions] == [1]
        assert agent.loads == [("llm", 1)]
    await agent.stop()
