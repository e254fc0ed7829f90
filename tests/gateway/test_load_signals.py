"""Load signals: per-model in flight, held, request counts and latency, published on NATS each
interval (for the autoscaler) and shown on /metrics."""

from __future__ import annotations

import asyncio

import aiohttp
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.dataplane.balancers.in_flight import InFlight
from modelplane.libs.dataplane.load_signals import LATENCY_BOUNDS, LoadSignals
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.proto import events_pb2
from tests.gateway.conftest import MLServerReplica, eventually, iris_route, put_route, start_gateway


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_window_counts_requests_latency_in_flight_and_held() -> None:
    """One window: requests and their latency buckets, live in-flight per replica, held requests."""
    clock = Clock()
    signals = LoadSignals(clock)
    in_flight = InFlight()
    in_flight.begin("iris:2", "mlserver.0")
    in_flight.begin("iris:1", "mlserver.1")
    in_flight.begin("iris:1", "mlserver.1")
    for seconds in (0.001, 0.02, 0.02, 40.0):
        signals.observe("iris", seconds)
    clock.now += 2.0
    (sample,) = signals.take(in_flight, lambda: {})
    assert (sample.model, sample.requests, sample.window_seconds) == ("iris", 4, 2.0)
    assert sample.in_flight == 3
    assert sample.replica_in_flight == {"mlserver.0": 1, "mlserver.1": 2}
    counts = dict(zip((*LATENCY_BOUNDS, float("inf")), sample.latency_counts, strict=True))
    assert (counts[0.005], counts[0.025], counts[float("inf")]) == (1, 2, 1)
    assert sum(sample.latency_counts) == 4


def test_a_model_falling_idle_is_reported_once_more_then_not_at_all() -> None:
    """The window after the last request reports zeros once; later windows leave the model out."""
    clock = Clock()
    signals = LoadSignals(clock)
    in_flight = InFlight()
    signals.observe("iris", 0.01)
    assert [s.model for s in signals.take(in_flight, lambda: {"held-model": 2})] == ["held-model", "iris"]
    idle = signals.take(in_flight, lambda: {})
    assert [(s.model, s.idle) for s in idle] == [("held-model", True), ("iris", True)]
    assert signals.take(in_flight, lambda: {}) == []


async def test_the_gateway_publishes_load_and_shows_live_counts(
    js: JetStreamContext, nats_server: EmbeddedNats, nc: NATS, mlserver: MLServerReplica
) -> None:
    """Requests through the gateway show up in ModelLoad messages and the /metrics gauges."""
    await put_route(js, iris_route(mlserver))
    reports: list[events_pb2.ModelLoad] = []
    idle = asyncio.Event()

    async def on_load(msg: Msg) -> None:
        load = events_pb2.ModelLoad.FromString(msg.data)
        reports.append(load)
        if sum(r.requests for r in reports) >= 5 and load.requests == 0 and load.in_flight == 0:
            idle.set()

    sub = await nc.subscribe(subjects.gateway_load("iris"), cb=on_load)
    app = await start_gateway(nats_server, load_report_interval=0.2, instance_id="gw-test")
    try:
        async with aiohttp.ClientSession() as http:

            async def routed() -> bool:
                return app.routes.get("iris") is not None

            await eventually(routed, 10, "route iris")
            for _ in range(5):
                async with http.post(
                    f"{app.http_url}/v2/models/iris/infer", json=mlserver.iris.v2_request(1)
                ) as resp:
                    assert resp.status == 200
            await asyncio.wait_for(idle.wait(), 10)
            async with http.get(f"{app.http_url}/metrics") as resp:
                text = await resp.text()
        assert sum(r.requests for r in reports) == 5
        assert sum(sum(r.latency_counts) for r in reports) == 5
        assert {r.gateway for r in reports} == {"gw-test"}
        assert list(reports[0].latency_bounds_seconds) == list(LATENCY_BOUNDS)
        assert "# TYPE modelplane_gateway_in_flight gauge" in text
        assert "# TYPE modelplane_gateway_held_requests gauge" in text
    finally:
        await app.close()
        await sub.unsubscribe()
