"""Experiments through the running gateway: split, x-seldon-route, stickiness, mirror copies.

The candidates are two routes ("iris-a", "iris-b") to the same real MLServer model iris_1, so
which candidate served is seen in the x-seldon-route header and, independently, in the gateway's
request metrics per model. The REST mirror is a small stand-in V2 server (not a model server) that
counts the copies it gets and answers with its own model name, which must never reach a client.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import grpc
import pytest
from aiohttp import web
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.resources.convert import experiment_to_pb
from modelplane.libs.resources.types import (
    Experiment,
    ExperimentCandidate,
    ExperimentMirror,
    ExperimentSpec,
    Meta,
)
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion
from modelplane.libs.store import TypedBucket
from modelplane.proto import open_inference_pb2 as oip
from modelplane.proto import open_inference_pb2_grpc as oip_grpc
from modelplane.proto import resources_pb2
from modelplane.services.gateway.app import App
from modelplane.services.gateway.mirroring import Mirror
from tests.gateway.conftest import (
    SERVER_MODEL_NAME,
    MLServerReplica,
    eventually,
    iris_route,
    put_route,
    start_gateway,
)

REQUESTS = 1000
CLIENTS = 8
STANDIN_MODEL = "standin-shadow"


@dataclass
class StandIn:
    """A V2 REST server that counts infer requests; blocks them while ``gate`` is clear."""

    url: str
    gate: asyncio.Event
    received: int = 0
    paths: Counter[str] = field(default_factory=Counter)


@pytest.fixture
async def standin() -> AsyncIterator[StandIn]:
    gate = asyncio.Event()
    gate.set()
    port = free_port()
    state = StandIn(url=f"127.0.0.1:{port}", gate=gate)

    async def infer(request: web.Request) -> web.Response:
        state.received += 1
        state.paths[request.match_info["model"]] += 1
        await state.gate.wait()
        return web.json_response(
            {
                "model_name": STANDIN_MODEL,
                "outputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [-1]}],
            }
        )

    app = web.Application()
    app.router.add_post("/v2/models/{model}/infer", infer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield state
    finally:
        gate.set()
        await runner.cleanup()


async def put_experiment(js: JetStreamContext, experiment: Experiment) -> None:
    bucket = await TypedBucket.open(js, subjects.KV_EXPERIMENTS, resources_pb2.Experiment)
    await bucket.put(experiment.meta.name, experiment_to_pb(experiment))


def ab(mirror: ExperimentMirror | None, default: str = "iris-a") -> Experiment:
    return Experiment(
        meta=Meta(name="ab"),
        spec=ExperimentSpec(
            candidates=(ExperimentCandidate("iris-a", 80), ExperimentCandidate("iris-b", 20)),
            default=default,
            mirror=mirror,
        ),
    )


@pytest.fixture
async def experiment_gateway(
    js: JetStreamContext,
    nats_server: EmbeddedNats,
    mlserver: MLServerReplica,
    standin: StandIn,
) -> AsyncIterator[App]:
    """A gateway with candidates iris-a/iris-b (MLServer) and "shadow" (the stand-in) routed."""
    await put_route(js, iris_route(mlserver, model="iris-a"))
    await put_route(js, iris_route(mlserver, model="iris-b"))
    await put_route(js, iris_route(mlserver, model="shadow-grpc"))
    shadow = RouteEndpoint(server="standin", index=0, http_endpoint=standin.url, grpc_endpoint=standin.url)
    await put_route(js, Route(model="shadow", versions=(RouteVersion(1, "shadow_1", (shadow,)),)))
    app = await start_gateway(nats_server, hold_seconds=0.5)
    try:

        async def routed() -> bool:
            return all(app.routes.get(m) for m in ("iris-a", "iris-b", "shadow", "shadow-grpc"))

        await eventually(routed, 10, "routes in the gateway")
        yield app
    finally:
        await app.close()


async def use_experiment(app: App, js: JetStreamContext, experiment: Experiment) -> None:
    await put_experiment(js, experiment)

    async def seen() -> bool:
        return app.experiments.get(experiment.meta.name) == experiment

    await eventually(seen, 10, "the experiment in the gateway")


def mirror_of(app: App) -> Mirror:
    assert app.mirror is not None
    return app.mirror


def within_three_sigma(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 3 * math.sqrt(n * p * (1 - p))


def metric(text: str, model: str) -> int:
    found = re.search(
        rf'modelplane_gateway_requests_total\{{[^}}]*model="{re.escape(model)}"[^}}]*protocol="rest"[^}}]*\}} (\S+)',
        text,
    )
    return int(float(found.group(1))) if found else 0


async def test_rest_split_route_header_and_mirror_share(
    experiment_gateway: App,
    js: JetStreamContext,
    mlserver: MLServerReplica,
    standin: StandIn,
    http: aiohttp.ClientSession,
) -> None:
    """1,000 requests for the baseline split 80/20 (3 sigma), each answer names its route, the
    gateway metrics agree, and the 25% mirror gets its copies (counted on /metrics) while clients
    only see MLServer."""
    app = experiment_gateway
    await use_experiment(app, js, ab(ExperimentMirror("shadow", 25)))
    url = f"{app.http_url}/v2/models/iris-a/infer"
    body = mlserver.iris.v2_request(2)
    routes: Counter[str] = Counter()
    answered: set[str] = set()

    async def client(session: aiohttp.ClientSession, count: int) -> None:
        for _ in range(count):
            async with session.post(url, json=body) as resp:
                assert resp.status == 200, await resp.text()
                reply = await resp.json()
                routes[resp.headers["x-seldon-route"]] += 1
                answered.add(reply["model_name"])
                assert reply["outputs"][0]["data"] == mlserver.iris.expected[:2].tolist()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session, REQUESTS // CLIENTS) for _ in range(CLIENTS)))
        async with session.get(f"{app.http_url}/metrics") as resp:
            metrics = await resp.text()

    assert set(routes) == {":iris-a_1:", ":iris-b_1:"}
    assert within_three_sigma(routes[":iris-a_1:"], REQUESTS, 0.8), routes
    assert metric(metrics, "iris-a") == routes[":iris-a_1:"]
    assert metric(metrics, "iris-b") == routes[":iris-b_1:"]
    assert answered == {SERVER_MODEL_NAME}
    mirror = mirror_of(app)

    async def copies_done() -> bool:
        return mirror.answered + mirror.failed == mirror.sent

    await eventually(copies_done, 20, "mirror copies to finish")
    assert (mirror.failed, mirror.dropped) == (0, 0)
    assert within_three_sigma(mirror.sent, REQUESTS, 0.25), mirror.sent
    assert standin.received == mirror.sent
    assert standin.paths == Counter({"shadow_1": mirror.sent})
    async with http.get(f"{app.http_url}/metrics") as resp:
        exposition = await resp.text()
    assert f'modelplane_gateway_mirror_requests_total{{result="answered"}} {float(mirror.sent)}' in exposition


async def test_route_header_sent_back_keeps_the_session_on_its_candidate(
    experiment_gateway: App, js: JetStreamContext, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """A client resending x-seldon-route :iris-b_1: stays on iris-b (the 20% candidate) every time."""
    app = experiment_gateway
    await use_experiment(app, js, ab(None))
    for _ in range(50):
        async with http.post(
            f"{app.http_url}/v2/models/iris-a/infer",
            json=mlserver.iris.v2_request(1),
            headers={"x-seldon-route": ":iris-b_1:"},
        ) as resp:
            assert resp.status == 200
            assert resp.headers["x-seldon-route"] == ":iris-b_1:"


async def test_mirror_never_delays_or_replaces_the_answer(
    experiment_gateway: App,
    js: JetStreamContext,
    mlserver: MLServerReplica,
    standin: StandIn,
    http: aiohttp.ClientSession,
) -> None:
    """With every copy stuck at the mirror, each request is still answered by its candidate."""
    app = experiment_gateway
    await use_experiment(app, js, ab(ExperimentMirror("shadow", 100)))
    standin.gate.clear()
    for count in range(1, 6):
        async with http.post(
            f"{app.http_url}/v2/models/iris/infer",
            json=mlserver.iris.v2_request(1),
            headers={"seldon-model": "ab.experiment"},
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["model_name"] == SERVER_MODEL_NAME

        async def arrived(expected: int = count) -> bool:
            return standin.received == expected

        await eventually(arrived, 10, "the copy to reach the mirror")
    mirror = mirror_of(app)
    assert mirror.in_flight == 5  # all copies still waiting at the mirror
    standin.gate.set()

    async def finished() -> bool:
        return mirror.answered == 5

    await eventually(finished, 10, "the released copies to finish")


async def test_grpc_split_header_stickiness_and_mirror(
    experiment_gateway: App, js: JetStreamContext, mlserver: MLServerReplica
) -> None:
    """gRPC: x-seldon-route comes back as initial metadata, is honoured when sent, and the
    mirror (here MLServer again) gets a copy of every request."""
    app = experiment_gateway
    await use_experiment(app, js, ab(ExperimentMirror("shadow-grpc", 100), default=""))
    data = mlserver.iris.X[:2]
    request = oip.ModelInferRequest(
        model_name="ignored",
        inputs=[
            oip.ModelInferRequest.InferInputTensor(
                name="predict",
                datatype="FP64",
                shape=list(data.shape),
                contents=oip.InferTensorContents(fp64_contents=data.flatten().tolist()),
            )
        ],
    )
    seen: Counter[str] = Counter()
    async with grpc.aio.insecure_channel(app.grpc_target) as channel:
        stub = oip_grpc.GRPCInferenceServiceStub(channel)
        for _ in range(40):
            call = stub.ModelInfer(request, metadata=(("seldon-model", "ab.experiment"),))
            response = await call
            headers = dict(await call.initial_metadata())
            seen[str(headers["x-seldon-route"])] += 1
            assert list(response.outputs[0].contents.int64_contents) == mlserver.iris.expected[:2].tolist()
        for _ in range(10):
            call = stub.ModelInfer(
                request, metadata=(("seldon-model", "ab.experiment"), ("x-seldon-route", ":iris-b_1:"))
            )
            await call
            assert dict(await call.initial_metadata())["x-seldon-route"] == ":iris-b_1:"
    assert set(seen) <= {":iris-a_1:", ":iris-b_1:"}
    assert seen[":iris-a_1:"] > 0
    mirror = mirror_of(app)

    async def copies_done() -> bool:
        return mirror.answered == 50

    await eventually(copies_done, 20, "gRPC mirror copies to be answered")
    assert (mirror.failed, mirror.dropped) == (0, 0)


async def test_unknown_experiment_is_404_naming_it(
    experiment_gateway: App, mlserver: MLServerReplica, http: aiohttp.ClientSession
) -> None:
    """seldon-model: <x>.experiment for no such experiment is 404 naming it."""
    async with http.post(
        f"{experiment_gateway.http_url}/v2/models/iris/infer",
        json=mlserver.iris.v2_request(1),
        headers={"seldon-model": "nosuch.experiment"},
    ) as resp:
        assert resp.status == 404
        assert "experiment nosuch not found" in (await resp.json())["error"]
