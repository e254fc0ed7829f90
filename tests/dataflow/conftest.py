"""Fixtures of the dataflow integration tests: one real MLServer serving the pipeline test models
(tests/helpers/pipeline_models.py), routes to it in a real NATS KV, a real gateway and real
dataflow workers (the service's own composition root) talking to each other over NATS.

Pipelines and graphs are put into their KV buckets the way the api stores them (parsed from
manifests, converted to protobuf), so these tests need no api or scheduler; the e2e suite covers
the whole stack.
"""

from __future__ import annotations

import dataclasses
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.resources import convert
from modelplane.libs.resources.manifests import parse_manifest
from modelplane.libs.resources.types import InferenceGraph, Pipeline
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2
from modelplane.services.dataflow.app import DataflowApp
from modelplane.services.dataflow.settings import DataflowSettings
from modelplane.services.gateway.app import App
from tests.gateway.conftest import eventually, poll_until, put_route, start_gateway
from tests.helpers.mlserver import spawn_mlserver, write_settings
from tests.helpers.pipeline_models import MODEL_NAMES, write_pipeline_models
from tests.helpers.processes import stop_process_group

MLSERVER_START_TIMEOUT = 90.0


@dataclass(frozen=True)
class ModelsReplica:
    pid: int
    http: str
    grpc: str

    def endpoint(self) -> RouteEndpoint:
        return RouteEndpoint(server="mlserver", index=0, http_endpoint=self.http, grpc_endpoint=self.grpc)


def _all_ready(http: str) -> bool:
    for name in MODEL_NAMES:
        try:
            with urllib.request.urlopen(f"http://{http}/v2/models/{name}/ready", timeout=2) as resp:
                if resp.status != 200:
                    return False
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
    return True


@pytest.fixture(scope="module")
def models_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelsReplica]:
    """One MLServer process serving every pipeline test model under its own name."""
    root = tmp_path_factory.mktemp("pipeline-models")
    repository = root / "models"
    write_pipeline_models(repository)
    http, grpc = write_settings(repository)
    proc = spawn_mlserver(repository, root / "mlserver.log")
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"mlserver exited with {proc.returncode}: {(root / 'mlserver.log').read_text()}")
            return _all_ready(http)

        poll_until(ready, MLSERVER_START_TIMEOUT, "MLServer to load the pipeline models")
        yield ModelsReplica(pid=proc.pid, http=http, grpc=grpc)
    finally:
        stop_process_group(proc, timeout=20)


async def start_worker(nats_server: EmbeddedNats, gateway: App, **overrides: Any) -> DataflowApp:
    settings = DataflowSettings(
        nats_url=nats_server.url,
        gateway_url=gateway.http_url,
        **overrides,
    )
    app = DataflowApp(settings)
    try:
        await app.start()
    except BaseException:
        await app.close()
        raise
    return app


@dataclass
class Flow:
    """The gateway and the workers of one test, and helpers to put pipelines/graphs in place."""

    js: JetStreamContext
    gateway: App
    workers: list[DataflowApp]
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.gateway.http_url

    async def put(self, manifest: dict[str, Any], generation: int = 1) -> Pipeline | InferenceGraph:
        """Store a Pipeline or InferenceGraph manifest as the api would, and wait until the
        gateway and every worker have it."""
        parsed = parse_manifest(manifest)
        meta = dataclasses.replace(parsed.meta, generation=generation)
        resource = dataclasses.replace(parsed, meta=meta)
        if isinstance(resource, Pipeline):
            bucket = await TypedBucket.open(self.js, subjects.KV_PIPELINES, resources_pb2.Pipeline)
            await bucket.put(meta.name, convert.pipeline_to_pb(resource))
            names = self.gateway.pipelines

            def in_worker(w: DataflowApp) -> bool:
                return w.table is not None and w.table.pipeline(meta.name) is not None
        else:
            assert isinstance(resource, InferenceGraph)
            gbucket = await TypedBucket.open(
                self.js, subjects.KV_INFERENCE_GRAPHS, resources_pb2.InferenceGraph
            )
            await gbucket.put(meta.name, convert.graph_to_pb(resource))
            names = self.gateway.graphs

            def in_worker(w: DataflowApp) -> bool:
                return w.table is not None and w.table.graph(meta.name) is not None

        async def everywhere() -> bool:
            return meta.name in names and all(in_worker(w) for w in self.workers)

        await eventually(everywhere, 10, f"{meta.name} to reach the gateway and the workers")
        return resource

    async def infer(self, pipeline: str, inputs: list[dict[str, Any]], **extra: Any) -> tuple[int, Any]:
        body = {"inputs": inputs, **extra}
        async with self.http.post(f"{self.url}/v2/models/{pipeline}.pipeline/infer", json=body) as resp:
            return resp.status, await resp.json()


def tensor(
    name: str, values: list[Any], datatype: str = "FP32", shape: list[int] | None = None
) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape or [len(values)], "data": values}


def outputs_by_name(answer: dict[str, Any]) -> dict[str, list[Any]]:
    return {t["name"]: t["data"] for t in answer["outputs"]}


@pytest.fixture
async def flow_without_workers(
    js: JetStreamContext, nats_server: EmbeddedNats, models_replica: ModelsReplica
) -> AsyncIterator[Flow]:
    """A gateway routing every test model to the MLServer replica; no dataflow worker yet
    (workers appended to ``Flow.workers`` are closed at the end)."""
    for name in MODEL_NAMES:
        await put_route(
            js, Route(model=name, versions=(RouteVersion(1, name, (models_replica.endpoint(),)),))
        )
    gateway = await start_gateway(nats_server, hold_seconds=0.5, pipeline_timeout_seconds=30)
    workers: list[DataflowApp] = []
    async with aiohttp.ClientSession() as http:
        try:

            async def routed() -> bool:
                return all(gateway.routes.get(name) is not None for name in MODEL_NAMES)

            await eventually(routed, 10, "routes of the test models")
            yield Flow(js, gateway, workers, http)
        finally:
            for worker in workers:
                await worker.close()
            await gateway.close()


@pytest.fixture
async def flow(flow_without_workers: Flow, nats_server: EmbeddedNats) -> Flow:
    """``flow_without_workers`` plus one dataflow worker."""
    flow_without_workers.workers.append(await start_worker(nats_server, flow_without_workers.gateway))
    return flow_without_workers
