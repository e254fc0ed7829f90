"""The status service on real NATS: statuses follow the placements and replicas written to KV."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from nats.js import JetStreamContext

from modelplane.libs import states, subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2, state_pb2
from modelplane.services.status.app import StatusApp
from modelplane.services.status.settings import StatusSettings


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Poll ``check`` until it is true or the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.05)


async def status_of(js: JetStreamContext, kind: str, name: str) -> state_pb2.ResourceStatus | None:
    bucket = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    found = await bucket.try_get(subjects.status_key(kind, name))
    return found.value if found else None


def placement(state: int) -> state_pb2.ModelPlacement:
    return state_pb2.ModelPlacement(
        model="iris",
        versions=[
            state_pb2.ModelVersionPlacement(
                version=1,
                server="mlserver",
                replicas=[state_pb2.ReplicaAssignment(server="mlserver", index=0, state=state)],  # type: ignore[arg-type]
            )
        ],
    )


async def test_model_status_follows_placements(nats_server: EmbeddedNats, js: JetStreamContext) -> None:
    """Progressing without a placement, Available once placed, Terminating on delete, then removed."""
    app = StatusApp(StatusSettings.model_validate({"nats_url": nats_server.url}))
    models = await TypedBucket.open(js, subjects.KV_MODELS, resources_pb2.Model)
    placements = await TypedBucket.open(js, subjects.KV_PLACEMENTS, state_pb2.ModelPlacement)
    try:
        await app.start()
        await models.put(
            "iris",
            resources_pb2.Model(
                meta=resources_pb2.ObjectMeta(name="iris", generation=1),
                spec=resources_pb2.ModelSpec(storage_uri="file:///m", replicas=1),
            ),
        )

        async def state_is(expected: str) -> bool:
            s = await status_of(js, "Model", "iris")
            return s is not None and s.state == expected

        await eventually(lambda: state_is(states.MODEL_PROGRESSING))
        s = await status_of(js, "Model", "iris")
        assert s is not None
        assert s.reason == "waiting for the scheduler"

        await placements.put("iris", placement(states.AVAILABLE))
        await eventually(lambda: state_is(states.MODEL_AVAILABLE))
        s = await status_of(js, "Model", "iris")
        assert s is not None
        assert (s.available_replicas, s.total_replicas, s.version) == (1, 1, 1)

        await placements.put("iris", placement(states.UNLOAD_REQUESTED))
        await models.delete("iris")
        await eventually(lambda: state_is(states.MODEL_TERMINATING))
        await placements.delete("iris")

        async def removed() -> bool:
            return await status_of(js, "Model", "iris") is None

        await eventually(removed)
    finally:
        await app.close()


async def test_server_status_follows_replicas(nats_server: EmbeddedNats, js: JetStreamContext) -> None:
    """A server is NotReady until its replicas register, then Ready."""
    app = StatusApp(StatusSettings.model_validate({"nats_url": nats_server.url}))
    servers = await TypedBucket.open(js, subjects.KV_SERVERS, resources_pb2.Server)
    replicas = await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
    try:
        await servers.put(
            "mlserver",
            resources_pb2.Server(
                meta=resources_pb2.ObjectMeta(name="mlserver"),
                spec=resources_pb2.ServerSpec(server_config="mlserver", replicas=1),
            ),
        )
        await app.start()

        async def state_is(expected: str) -> bool:
            s = await status_of(js, "Server", "mlserver")
            return s is not None and s.state == expected

        await eventually(lambda: state_is("ServerNotReady"))
        await replicas.put("mlserver.0", state_pb2.ReplicaInfo(server="mlserver", index=0, incarnation="a"))
        await eventually(lambda: state_is("ServerReady"))
        s = await status_of(js, "Server", "mlserver")
        assert s is not None
        assert [(r.index, r.state) for r in s.replicas] == [(0, "Ready")]
    finally:
        await app.close()


async def test_server_status_shows_booked_memory_and_scale_request(
    nats_server: EmbeddedNats, js: JetStreamContext
) -> None:
    """The scheduler's ServerState and pending ServerScaleRequest appear in the Server's status."""
    app = StatusApp(StatusSettings.model_validate({"nats_url": nats_server.url}))
    servers = await TypedBucket.open(js, subjects.KV_SERVERS, resources_pb2.Server)
    replicas = await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
    usage = await TypedBucket.open(js, subjects.KV_SERVER_STATES, state_pb2.ServerState)
    requests = await TypedBucket.open(js, subjects.KV_SCALE_REQUESTS, state_pb2.ServerScaleRequest)
    await servers.put(
        "mlserver",
        resources_pb2.Server(
            meta=resources_pb2.ObjectMeta(name="mlserver"),
            spec=resources_pb2.ServerSpec(server_config="mlserver", replicas=1),
        ),
    )
    await replicas.put("mlserver.0", state_pb2.ReplicaInfo(server="mlserver", index=0, incarnation="a"))
    try:
        await app.start()
        await usage.put(
            "mlserver",
            state_pb2.ServerState(
                server="mlserver",
                replicas=[
                    state_pb2.ReplicaUsage(
                        index=0,
                        memory_bytes=1000,
                        overcommit_percent=10,
                        reserved_bytes=100,
                        loaded_bytes=200,
                        available_bytes=900,
                        models=["iris_1", "wine_1"],
                        draining=True,
                    )
                ],
            ),
        )
        await requests.put(
            "mlserver",
            state_pb2.ServerScaleRequest(
                server="mlserver",
                current_replicas=1,
                target_replicas=3,
                direction=state_pb2.SCALE_UP,
                reason="model iris has 1 of 3 replicas",
                requested_at="2026-01-01T00:00:00Z",
            ),
        )

        async def folded() -> bool:
            s = await status_of(js, "Server", "mlserver")
            return s is not None and bool(s.scale_request) and bool(s.replicas) and s.replicas[0].draining

        await eventually(folded)
        s = await status_of(js, "Server", "mlserver")
        assert s is not None
        r = s.replicas[0]
        assert (
            r.memory_bytes,
            r.overcommit_percent,
            r.reserved_bytes,
            r.loaded_bytes,
            r.available_bytes,
        ) == (
            1000,
            10,
            100,
            200,
            900,
        )
        assert list(r.models) == ["iris_1", "wine_1"]
        assert s.scale_request == (
            "scale up from 1 to 3 replicas: model iris has 1 of 3 replicas (requested 2026-01-01T00:00:00Z)"
        )

        await requests.delete("mlserver")

        async def cleared() -> bool:
            s = await status_of(js, "Server", "mlserver")
            return s is not None and s.scale_request == ""

        await eventually(cleared)
    finally:
        await app.close()
