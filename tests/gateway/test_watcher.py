"""The route watcher keeps the table in step with the KV bucket on a real nats-server."""

from __future__ import annotations

from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.dataplane.routing import RouteTable
from modelplane.libs.dataplane.watcher import BucketWatcher, RouteWatcher
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion, route_from_pb, route_to_pb
from modelplane.libs.store import TypedBucket
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import state_pb2
from tests.gateway.conftest import eventually

EP = RouteEndpoint("mlserver", 0, "127.0.0.1:1", "127.0.0.1:2")


async def test_watcher_syncs_existing_routes_then_follows_changes(js: JetStreamContext) -> None:
    """Existing keys are loaded and marked synced; later puts and deletes show up."""
    bucket = await TypedBucket.open(js, subjects.KV_ROUTES, state_pb2.ModelRoute)
    await bucket.put("iris", route_to_pb(Route("iris", (RouteVersion(1, "iris_1", (EP,)),))))
    table = RouteTable()
    tasks = TaskSupervisor("test")
    tasks.spawn("watcher", RouteWatcher(bucket, table).run())
    try:

        async def synced() -> bool:
            return table.synced

        await eventually(synced, 10, "sync")
        assert table.models() == ["iris"]

        await bucket.put("wine", route_to_pb(Route("wine", ())))

        async def has_wine() -> bool:
            return table.get("wine") is not None

        await eventually(has_wine, 10, "wine route")
        await bucket.delete("iris")

        async def iris_gone() -> bool:
            return table.get("iris") is None

        await eventually(iris_gone, 10, "iris deletion")
    finally:
        await tasks.close()


async def test_empty_bucket_still_becomes_synced(js: JetStreamContext) -> None:
    """With no routes at all the table is synced (and the gateway ready) right away."""
    bucket = await TypedBucket.open(js, subjects.KV_ROUTES, state_pb2.ModelRoute)
    table = RouteTable()
    tasks = TaskSupervisor("test")
    tasks.spawn("watcher", RouteWatcher(bucket, table).run())
    try:

        async def synced() -> bool:
            return table.synced

        await eventually(synced, 10, "sync")
        assert len(table) == 0
    finally:
        await tasks.close()


async def test_a_record_that_cannot_be_used_is_skipped_not_fatal(js: JetStreamContext) -> None:
    """A record whose conversion fails is skipped: the table still syncs and follows later changes."""
    bucket = await TypedBucket.open(js, subjects.KV_ROUTES, state_pb2.ModelRoute)
    await bucket.put("bad", route_to_pb(Route("bad", ())))
    await bucket.put("iris", route_to_pb(Route("iris", ())))

    def decode(key: str, msg: state_pb2.ModelRoute) -> Route:
        if key.startswith("bad"):
            raise ValueError("unusable record")
        return route_from_pb(key, msg)

    table = RouteTable()
    tasks = TaskSupervisor("test")
    tasks.spawn("watcher", BucketWatcher(bucket, table, decode, "route").run())
    try:

        async def synced() -> bool:
            return table.synced

        await eventually(synced, 10, "sync")
        assert table.models() == ["iris"]
        await bucket.put("bad-again", route_to_pb(Route("bad-again", ())))
        await bucket.put("wine", route_to_pb(Route("wine", ())))

        async def has_wine() -> bool:
            return table.get("wine") is not None

        await eventually(has_wine, 10, "wine route")
        assert table.models() == ["iris", "wine"]
    finally:
        await tasks.close()
