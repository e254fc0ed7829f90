"""Fixtures of the gateway tests: a real MLServer replica, routes in a real NATS KV, the gateway.

The MLServer process is shared by the module (start-up takes seconds); it runs in its own
process group so stopping it by pid also stops anything it spawned. NATS and the gateway are
fresh per test.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import aiohttp
import pytest
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion, route_to_pb
from modelplane.libs.store import TypedBucket
from modelplane.proto import state_pb2
from modelplane.services.gateway.app import App
from modelplane.services.gateway.settings import GatewaySettings
from tests.helpers.iris import IrisModel
from tests.helpers.mlserver import iris_repository, spawn_mlserver
from tests.helpers.processes import stop_process_group

MLSERVER_START_TIMEOUT = 90.0
SERVER_MODEL_NAME = "iris_1"


@dataclass(frozen=True)
class MLServerReplica:
    pid: int
    http: str
    grpc: str
    iris: IrisModel

    def endpoint(self, index: int = 0) -> RouteEndpoint:
        return RouteEndpoint(server="mlserver", index=index, http_endpoint=self.http, grpc_endpoint=self.grpc)


def poll_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Block until ``check()`` is true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Await until ``await check()`` is true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def _model_ready(http: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{http}/v2/models/{SERVER_MODEL_NAME}/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServerReplica]:
    """One MLServer process serving the iris model as ``iris_1``."""
    root = tmp_path_factory.mktemp("mlserver")
    (root / "models").mkdir()
    repository = iris_repository(root / "models", SERVER_MODEL_NAME)
    proc = spawn_mlserver(repository.models, root / "mlserver.log")
    try:
        http = repository.http

        def ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"mlserver exited with {proc.returncode}: {(root / 'mlserver.log').read_text()}")
            return _model_ready(http)

        poll_until(ready, MLSERVER_START_TIMEOUT, "MLServer to load iris_1")
        yield MLServerReplica(pid=proc.pid, http=http, grpc=repository.grpc, iris=repository.iris)
    finally:
        # The process group is ours (start_new_session): stop it and everything it spawned.
        stop_process_group(proc, timeout=20)


async def put_route(js: JetStreamContext, route: Route) -> None:
    bucket = await TypedBucket.open(js, subjects.KV_ROUTES, state_pb2.ModelRoute)
    await bucket.put(route.model, route_to_pb(route))


def iris_route(replica: MLServerReplica, *extra: RouteEndpoint, model: str = "iris") -> Route:
    return Route(
        model=model,
        versions=(RouteVersion(1, SERVER_MODEL_NAME, (replica.endpoint(), *extra)),),
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def start_gateway(nats_server: EmbeddedNats, **overrides: object) -> App:
    settings = GatewaySettings(
        nats_url=nats_server.url,
        host="127.0.0.1",
        http_port=free_port(),
        grpc_port=free_port(),
        **overrides,  # type: ignore[arg-type]
    )
    app = App(settings)
    try:
        await app.start()
    except BaseException:
        await app.close()
        raise
    return app


@pytest.fixture
async def gateway(
    js: JetStreamContext,
    nats_server: EmbeddedNats,
    mlserver: MLServerReplica,
    http: aiohttp.ClientSession,
) -> AsyncIterator[App]:
    """A running gateway whose route table already holds model "iris" -> the MLServer replica."""
    await put_route(js, iris_route(mlserver))
    # Requests for a model without a replica give up after half a second here (the hold itself is
    # tested in test_rest.py's held-request test and test_holding.py).
    app = await start_gateway(nats_server, hold_seconds=0.5)
    try:

        async def ready() -> bool:
            async with http.get(f"{app.http_url}/v2/health/ready") as resp:
                return resp.status == 200 and app.routes.get("iris") is not None

        await eventually(ready, 10, "gateway readiness")
        yield app
    finally:
        await app.close()
