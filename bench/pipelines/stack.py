"""What the pipeline benchmark runs against, every piece its own process on free ports, stopped
by pid at the end: nats-server, one MLServer replica serving the ``double`` test model
(tests/helpers/pipeline_models.py), the gateway (``modelplane run gateway``) and one dataflow
worker (``modelplane run dataflow``).

Routes ``step1`` .. ``stepN`` -> ``double`` on the replica and the pipeline ``chain3``
(step1 -> step2 -> ... -> stepN; N = 3 unless asked otherwise) are written into KV directly, as the scheduler and the api would.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType

import aiohttp

from bench.gateway.stack import REPO_ROOT, Endpoints, _alive, _poll, _spawn, _status
from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.resources import convert
from modelplane.libs.resources.manifests import parse_manifest
from modelplane.libs.resources.types import Pipeline
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion, route_to_pb
from modelplane.libs.store import TypedBucket, connect, disconnect, ensure_buckets
from modelplane.proto import resources_pb2, state_pb2
from tests.helpers.mlserver import spawn_mlserver, write_settings
from tests.helpers.pipeline_models import write_pipeline_models
from tests.helpers.processes import stop_process_group

SERVER_MODEL = "double"
# Steps of the benchmarked chain (the case: 3).
DEFAULT_STEPS = 3


def step_names(count: int) -> tuple[str, ...]:
    return tuple(f"step{i}" for i in range(1, count + 1))


PIPELINE = "chain3"
START_TIMEOUT = 120.0


def _chain_manifest(names: tuple[str, ...]) -> dict[str, object]:
    steps: list[dict[str, object]] = [{"name": names[0]}]
    steps += [{"name": step, "inputs": [previous]} for previous, step in itertools.pairwise(names)]
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": PIPELINE},
        "spec": {"steps": steps, "output": {"steps": [names[-1]]}},
    }


class Stack:
    """``async with Stack() as stack``: everything running, routes and pipeline in KV."""

    def __init__(
        self,
        work_dir: Path | None = None,
        profile_to: Path | None = None,
        steps: int = DEFAULT_STEPS,
        profiled: str = "dataflow",
    ) -> None:
        self.steps = step_names(steps)
        # cProfile output of one process ("gateway" or "dataflow"; written when it stops).
        self._profile_to = profile_to
        self._profiled = profiled
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-pipelines-", dir=work_dir)
        self.root = Path(self._tmp.name)
        self._nats = EmbeddedNats(self.root / "nats", port=free_port(), log_file=self.root / "nats.log")
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.direct = Endpoints("", "")
        self.gateway = Endpoints("", "")

    @property
    def nats_url(self) -> str:
        return self._nats.url

    def pid(self, name: str) -> int:
        return self._procs[name].pid

    async def __aenter__(self) -> Stack:
        try:
            await self._nats.start()
            await self._start_mlserver()
            await self._put_state()
            await self._start_services()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        for proc in reversed(list(self._procs.values())):
            stop_process_group(proc, timeout=20)
        self._procs.clear()
        await self._nats.stop()
        self._tmp.cleanup()

    async def _start_mlserver(self) -> None:
        models = self.root / "models"
        write_pipeline_models(models, (SERVER_MODEL,))
        http, grpc = write_settings(models)
        log = self.root / "mlserver.log"
        proc = spawn_mlserver(models, log)
        self._procs["mlserver"] = proc
        self.direct = Endpoints(http, grpc)
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                _alive(proc, "mlserver", log)
                return (
                    await _status(session, f"http://{self.direct.http}/v2/models/{SERVER_MODEL}/ready") == 200
                )

            await _poll(ready, START_TIMEOUT, "MLServer to serve the model")

    async def _put_state(self) -> None:
        nc = await connect(self._nats.url, name="bench-pipelines")
        try:
            js = nc.jetstream()
            await ensure_buckets(js)
            routes = await TypedBucket.open(js, subjects.KV_ROUTES, state_pb2.ModelRoute)
            endpoint = RouteEndpoint(
                server="mlserver", index=0, http_endpoint=self.direct.http, grpc_endpoint=self.direct.grpc
            )
            for step in self.steps:
                route = Route(model=step, versions=(RouteVersion(1, SERVER_MODEL, (endpoint,)),))
                await routes.put(step, route_to_pb(route))
            pipeline = parse_manifest(_chain_manifest(self.steps))
            assert isinstance(pipeline, Pipeline)
            pipelines = await TypedBucket.open(js, subjects.KV_PIPELINES, resources_pb2.Pipeline)
            await pipelines.put(PIPELINE, convert.pipeline_to_pb(pipeline))
        finally:
            await disconnect(nc)

    async def _start_services(self) -> None:
        http_port, grpc_port = free_port(), free_port()
        self.gateway = Endpoints(f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}")
        env = {
            **os.environ,
            "MODELPLANE_NATS_URL": self._nats.url,
            "MODELPLANE_LOG_LEVEL": "warning",
            "MODELPLANE_GATEWAY_HOST": "127.0.0.1",
            "MODELPLANE_GATEWAY_HTTP_PORT": str(http_port),
            "MODELPLANE_GATEWAY_GRPC_PORT": str(grpc_port),
            "MODELPLANE_DATAFLOW_GATEWAY_URL": f"http://{self.gateway.http}",
            "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH")))),
        }
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        for name in ("gateway", "dataflow"):
            log = self.root / f"{name}.log"
            command = [sys.executable]
            if name == self._profiled and self._profile_to is not None:
                command += ["-m", "cProfile", "-o", str(self._profile_to)]
            self._procs[name] = _spawn([*command, "-m", "modelplane", "run", name], log, env)
        body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
        async with aiohttp.ClientSession() as session:

            async def answers() -> bool:
                for name in ("gateway", "dataflow"):
                    _alive(self._procs[name], name, self.root / f"{name}.log")
                url = f"http://{self.gateway.http}/v2/models/{PIPELINE}.pipeline/infer"
                try:
                    async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                        return resp.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    return False

            await _poll(answers, START_TIMEOUT, "the pipeline to answer through the gateway")
