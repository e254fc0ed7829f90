"""What the gateway benchmark runs against: NATS, one MLServer replica and the gateway process.

Every piece is its own process on free ports, started here and stopped by pid at the end:
- nats-server (libs.embedded_nats), holding KV_ROUTES;
- one MLServer replica (``parallel_workers`` 0: inference in its main process, the fewest
  processes on a 2-core machine) serving the sklearn iris model of tests/helpers/iris.py as
  ``iris_1``, in its own process group so stopping the group stops anything it spawned;
- the gateway as ``modelplane run gateway`` (its own interpreter: it must not share the load
  generator's event loop or GIL), optionally under cProfile.

The route ``iris -> iris_1 on the replica`` is written into KV_ROUTES directly, as the scheduler
would, so neither scheduler nor agent is needed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiohttp

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion, route_to_pb
from modelplane.libs.store import TypedBucket, connect, disconnect, ensure_buckets
from modelplane.proto import state_pb2
from tests.helpers.iris import IrisModel
from tests.helpers.mlserver import iris_repository, spawn_mlserver
from tests.helpers.processes import stop_process_group

MODEL = "iris"
SERVER_MODEL_NAME = "iris_1"
# Seconds MLServer may take to serve the model (~4 s on an idle machine) and the gateway to route.
MLSERVER_START_TIMEOUT = 120.0
GATEWAY_START_TIMEOUT = 30.0
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Endpoints:
    """host:port of one V2 server (REST and gRPC)."""

    http: str
    grpc: str


async def _poll(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


async def _status(session: aiohttp.ClientSession, url: str) -> int:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


def _spawn(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session (stopped with its group), output into ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=log.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _alive(proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    if proc.poll() is not None:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"{name} exited with code {proc.returncode}:\n{tail}")


class Stack:
    """``async with Stack(work_dir) as stack``: everything running, the route in KV."""

    def __init__(self, work_dir: Path | None = None, gateway_env: dict[str, str] | None = None) -> None:
        self._gateway_env = dict(gateway_env or {})
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-gateway-", dir=work_dir)
        self.root = Path(self._tmp.name)
        self._nats = EmbeddedNats(self.root / "nats", port=free_port(), log_file=self.root / "nats.log")
        self._mlserver: subprocess.Popen[bytes] | None = None
        self._gateway: subprocess.Popen[bytes] | None = None
        self._gateway_runs = 0
        self.iris: IrisModel | None = None
        self.direct = Endpoints("", "")
        self.gateway = Endpoints("", "")

    @property
    def gateway_pid(self) -> int | None:
        return self._gateway.pid if self._gateway is not None else None

    @property
    def mlserver_pid(self) -> int | None:
        return self._mlserver.pid if self._mlserver is not None else None

    async def __aenter__(self) -> Stack:
        try:
            await self._nats.start()
            await self._start_mlserver()
            await self._put_route()
            await self.start_gateway()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self.stop_gateway()
        if self._mlserver is not None:
            stop_process_group(self._mlserver, timeout=20)
            self._mlserver = None
        await self._nats.stop()
        self._tmp.cleanup()

    # ---- MLServer -----------------------------------------------------------------------------
    async def _start_mlserver(self) -> None:
        models = self.root / "models"
        models.mkdir(parents=True, exist_ok=True)
        repository = iris_repository(models, SERVER_MODEL_NAME)
        self.iris = repository.iris
        log = self.root / "mlserver.log"
        self._mlserver = spawn_mlserver(models, log)
        self.direct = Endpoints(repository.http, repository.grpc)
        proc = self._mlserver
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                _alive(proc, "mlserver", log)
                url = f"http://{self.direct.http}/v2/models/{SERVER_MODEL_NAME}/ready"
                return await _status(session, url) == 200

            await _poll(ready, MLSERVER_START_TIMEOUT, "MLServer to serve iris_1")

    async def _put_route(self) -> None:
        nc = await connect(self._nats.url, name="bench-gateway")
        try:
            js = nc.jetstream()
            await ensure_buckets(js, (subjects.KV_ROUTES,))
            bucket = await TypedBucket.open(js, subjects.KV_ROUTES, state_pb2.ModelRoute)
            endpoint = RouteEndpoint(
                server="mlserver", index=0, http_endpoint=self.direct.http, grpc_endpoint=self.direct.grpc
            )
            route = Route(model=MODEL, versions=(RouteVersion(1, SERVER_MODEL_NAME, (endpoint,)),))
            await bucket.put(MODEL, route_to_pb(route))
        finally:
            await disconnect(nc)

    # ---- gateway ------------------------------------------------------------------------------
    async def start_gateway(self, profile_to: Path | None = None) -> None:
        """Start the gateway process (under cProfile writing ``profile_to`` if given).

        It runs gateway_process.py: ``modelplane run gateway``.
        """
        self.stop_gateway()
        http_port, grpc_port = free_port(), free_port()
        env = {
            **os.environ,
            "MODELPLANE_NATS_URL": self._nats.url,
            "MODELPLANE_LOG_LEVEL": "warning",
            "MODELPLANE_GATEWAY_HOST": "127.0.0.1",
            "MODELPLANE_GATEWAY_HTTP_PORT": str(http_port),
            "MODELPLANE_GATEWAY_GRPC_PORT": str(grpc_port),
            # The process starts in a temp directory; ``bench`` is importable from the repo root.
            "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO_ROOT), os.environ.get("PYTHONPATH")))),
        }
        # Without an exporter no span is recorded (libs/telemetry.py); exporting is not measured.
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        env.update(self._gateway_env)
        command = [sys.executable]
        if profile_to is not None:
            command += ["-m", "cProfile", "-o", str(profile_to)]
        command += ["-m", "bench.gateway.gateway_process"]
        self._gateway_runs += 1
        log = self.root / f"gateway-{self._gateway_runs}.log"
        self._gateway = _spawn(command, log, env)
        self.gateway = Endpoints(f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}")
        proc = self._gateway
        async with aiohttp.ClientSession() as session:

            async def routed() -> bool:
                _alive(proc, "gateway", log)
                return await _status(session, f"http://{self.gateway.http}/v2/models/{MODEL}/ready") == 200

            await _poll(routed, GATEWAY_START_TIMEOUT, "the gateway to route model iris")

    def stop_gateway(self) -> None:
        """SIGTERM the gateway (a profiled one writes its profile as it exits)."""
        if self._gateway is not None:
            stop_process_group(self._gateway, timeout=20)
            self._gateway = None
