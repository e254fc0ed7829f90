"""The autoscaler service against a real NATS and the real api: load reports in, replicas out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.auth.tokens import TokenStore, generate_token
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.store import TypedBucket
from modelplane.proto import events_pb2, resources_pb2, state_pb2
from modelplane.services.api.app import App as ApiApp
from modelplane.services.api.settings import ApiSettings
from modelplane.services.autoscaler.app import AutoscalerApp, KvScalingStore
from modelplane.services.autoscaler.handler import Scaled
from modelplane.services.autoscaler.model_scaling import Decision, ScalerState
from modelplane.services.autoscaler.settings import AutoscalerSettings
from tests.gateway.conftest import eventually
from tests.helpers.auth import ADMIN

# The autoscaler's own token, stored before the api starts (as `up` does).
AUTOSCALER_TOKEN = generate_token()


@pytest.fixture
async def api(nats_server: EmbeddedNats, js: JetStreamContext, tmp_path: Path) -> AsyncIterator[ApiApp]:
    await (await TokenStore.open(js)).ensure("autoscaler", "admin", AUTOSCALER_TOKEN)
    # The model's storageUri (/models/iris) is never fetched here: any path outside the state dir.
    settings = ApiSettings(
        nats_url=nats_server.url,
        grpc_port=0,
        http_port=0,
        storage_local_roots="/",
        state_dir=tmp_path / "state",
    )
    app = ApiApp(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.close()


def quick(nats_server: EmbeddedNats, api: ApiApp, **overrides: float) -> AutoscalerApp:
    # Short ticks, a two-sample window and a short lease keep the tests quick; the rules are the same.
    settings: dict[str, object] = {
        "nats_url": nats_server.url,
        "api_address": api.grpc_address,
        "api_token": AUTOSCALER_TOKEN,
        "interval_seconds": 0.05,
        "window_seconds": 0.1,
        "stale_after_seconds": 0.3,
        "lease_ttl": 1.0,
        "lease_renew_interval": 0.2,
        "metrics_port": 0,
        **overrides,
    }
    return AutoscalerApp(AutoscalerSettings.model_validate(settings))


@pytest.fixture
async def autoscaler(nats_server: EmbeddedNats, api: ApiApp) -> AsyncIterator[AutoscalerApp]:
    app = quick(nats_server, api)
    await app.start()
    try:
        yield app
    finally:
        await app.close()


MODEL = {
    "apiVersion": "modelplane.io/v1alpha1",
    "kind": "Model",
    "metadata": {"name": "iris"},
    "spec": {
        "storageUri": "file:///models/iris",
        "replicas": 1,
        "minReplicas": 1,
        "maxReplicas": 5,
        "autoscaling": {"targetRequests": 2, "scaleDownDelaySeconds": 0.1},
    },
}


async def test_load_reports_drive_the_models_replicas(
    api: ApiApp, autoscaler: AutoscalerApp, nc: NATS, js: JetStreamContext
) -> None:
    """7 requests in flight at one gateway and 1 held at another, target 2: 4 replicas, applied
    through the api; when the gateways go quiet the model goes back to minReplicas."""
    await api.handler.apply_manifest(ADMIN, MODEL)
    models = await TypedBucket.open(js, subjects.KV_MODELS, resources_pb2.Model)
    reporting = True

    async def report() -> None:
        while reporting:
            for gateway, in_flight, held in (("gw-1", 7, 0), ("gw-2", 0, 1)):
                sample = events_pb2.ModelLoad(model="iris", gateway=gateway, in_flight=in_flight, held=held)
                await nc.publish(subjects.gateway_load("iris"), sample.SerializeToString())
            await asyncio.sleep(0.02)

    async def replicas_are(count: int) -> bool:
        found = await models.try_get("iris")
        return found is not None and found.value.spec.replicas == count

    reporter = asyncio.create_task(report(), name="test-load-reporter")
    try:
        await eventually(lambda: replicas_are(4), 10, "the model to scale to 4 replicas")
    finally:
        reporting = False
        await reporter
    scaling = await TypedBucket.open(js, subjects.KV_AUTOSCALER, state_pb2.ModelScaling)
    record = await scaling.try_get("iris")
    assert record is not None
    assert "target 2" in record.value.reason
    await eventually(lambda: replicas_are(1), 10, "the model to scale back to minReplicas")
    stored = await models.try_get("iris")
    assert stored is not None
    assert stored.value.meta.generation > 1  # applied through the api, versioned like any change


async def test_one_autoscaler_leads_and_a_standby_takes_over(nats_server: EmbeddedNats, api: ApiApp) -> None:
    """Two instances: exactly one decides; when it stops, the other takes the lease."""
    apps = [quick(nats_server, api), quick(nats_server, api)]
    try:
        for app in apps:
            await app.start()

        async def one_leader() -> bool:
            return sum(app.is_leader for app in apps) == 1

        await eventually(one_leader, 10, "one of two autoscalers to lead")
        leader = next(app for app in apps if app.is_leader)
        standby = next(app for app in apps if app is not leader)
        await leader.close()

        async def taken_over() -> bool:
            return standby.is_leader

        await eventually(taken_over, 10, "the standby to take the lease over")
    finally:
        for app in apps:
            await app.close()


async def test_a_wake_scales_a_model_at_zero_to_one_at_once(
    nats_server: EmbeddedNats, api: ApiApp, nc: NATS, js: JetStreamContext
) -> None:
    """A gateway holding a request for a model at zero replicas wakes it: one replica, applied
    without waiting for a tick (the ticks here are an hour apart)."""
    app = quick(nats_server, api, interval_seconds=3600)
    zero = {**MODEL, "spec": {**MODEL["spec"], "replicas": 0, "minReplicas": 0}}  # type: ignore[dict-item]
    await api.handler.apply_manifest(ADMIN, zero)
    models = await TypedBucket.open(js, subjects.KV_MODELS, resources_pb2.Model)
    await app.start()
    try:

        async def leading() -> bool:
            return app.is_leader

        await eventually(leading, 10, "the autoscaler to lead")

        async def replicas_are_one() -> bool:
            # Re-sent until seen: the autoscaler learns the model from its KV watch.
            wake = events_pb2.ModelWake(model="iris", gateway="gw-1", held=1)
            await nc.publish(subjects.gateway_wake("iris"), wake.SerializeToString())
            found = await models.try_get("iris")
            return found is not None and found.value.spec.replicas == 1

        await eventually(replicas_are_one, 10, "the model to get one replica")
        scaling = await TypedBucket.open(js, subjects.KV_AUTOSCALER, state_pb2.ModelScaling)
        record = await scaling.try_get("iris")
        assert record is not None
        assert (record.value.reason, record.value.desired_replicas) == ("request held at 0 replicas -> 1", 1)
    finally:
        await app.close()


async def test_an_unchanged_decision_is_not_written_again(js: JetStreamContext) -> None:
    """The same decision tick after tick leaves the record (and the status built from it) alone."""
    bucket = await TypedBucket.open(js, subjects.KV_AUTOSCALER, state_pb2.ModelScaling)
    store = KvScalingStore(bucket)
    same = Scaled("iris", ScalerState(average=0.0), Decision(1, 1, 0.0, "avg concurrency 0 / target 2 -> 1"))
    await store.save(same)
    first = await bucket.try_get("iris")
    await store.save(same)
    assert (await bucket.try_get("iris")).revision == first.revision  # type: ignore[union-attr]
    await store.save(
        Scaled("iris", ScalerState(average=3.0), Decision(1, 2, 3.0, "avg concurrency 3 / target 2 -> 2"))
    )
    changed = await bucket.try_get("iris")
    assert changed is not None
    assert changed.value.desired_replicas == 2
    assert changed.value.at


SERVER = {
    "apiVersion": "mlops.seldon.io/v1alpha1",
    "kind": "Server",
    "metadata": {"name": "pool"},
    "spec": {"serverConfig": "mlserver", "replicas": 1, "minReplicas": 1, "maxReplicas": 3},
}


async def test_the_schedulers_scale_requests_set_the_servers_replicas(
    api: ApiApp, autoscaler: AutoscalerApp, nc: NATS, js: JetStreamContext
) -> None:
    """Up to maxReplicas at once; down when replicas are empty, announced as events and counted
    on /metrics."""
    await api.handler.apply_manifest(ADMIN, SERVER)
    servers = await TypedBucket.open(js, subjects.KV_SERVERS, resources_pb2.Server)
    asks = await TypedBucket.open(js, subjects.KV_SCALE_REQUESTS, state_pb2.ServerScaleRequest)
    usage = await TypedBucket.open(js, subjects.KV_SERVER_STATES, state_pb2.ServerState)
    events: list[events_pb2.Event] = []

    async def on_event(msg: Msg) -> None:
        events.append(events_pb2.Event.FromString(msg.data))

    sub = await nc.subscribe(subjects.resource_event("Server", "pool"), cb=on_event)

    async def replicas_are(count: int) -> bool:
        found = await servers.try_get("pool")
        return found is not None and found.value.spec.replicas == count

    try:
        await asks.put(
            "pool",
            state_pb2.ServerScaleRequest(
                server="pool", current_replicas=1, target_replicas=5, direction=state_pb2.SCALE_UP, reason="a"
            ),
        )
        await eventually(lambda: replicas_are(3), 10, "the server to scale to its maxReplicas")
        await asks.delete("pool")
        await usage.put(
            "pool",
            state_pb2.ServerState(
                server="pool",
                replicas=[
                    state_pb2.ReplicaUsage(index=0, available_bytes=1 << 30, models=["iris_1"]),
                    state_pb2.ReplicaUsage(index=1, available_bytes=1 << 30),
                    state_pb2.ReplicaUsage(index=2, available_bytes=1 << 30),
                ],
            ),
        )
        await asks.put(
            "pool",
            state_pb2.ServerScaleRequest(
                server="pool",
                current_replicas=3,
                target_replicas=1,
                direction=state_pb2.SCALE_DOWN,
                reason="2 replicas are empty",
            ),
        )
        await eventually(lambda: replicas_are(1), 10, "the server to scale back to 1")

        async def both_announced() -> bool:
            return [e.type for e in events if e.name == "pool" and e.source == "autoscaler"] == [
                "scaled_up",
                "scaled_down",
            ]

        await eventually(both_announced, 10, "both changes to be announced")
        assert events[-1].attributes["reason"] == "scheduler asks for 1: 2 replicas are empty"
    finally:
        await sub.unsubscribe()
    url = f"http://127.0.0.1:{autoscaler.metrics_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    assert 'modelplane_autoscaler_scalings_total{direction="up",kind="Server"} 1.0' in text
    assert 'modelplane_autoscaler_server_replicas{server="pool"} 1.0' in text
    assert "modelplane_autoscaler_leader 1.0" in text
