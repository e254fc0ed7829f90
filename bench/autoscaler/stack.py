"""What the autoscaler benchmark runs against, every piece a real process on free ports:

- a real ``modelplane up`` (tests/e2e/stack.UpProcess) with the autoscaler's knobs shortened
  through its environment (``extra_env``, inherited by its ``autoscaler`` and ``gateway``
  children), every port free (the autoscaler's /metrics too); it starts
  one placement agent, and through it one MLServer, per Server replica;
- a bare MLServer process of the same configuration (``parallel_workers`` as the stack's
  replicas get it), with no model at start: the baseline for MLServer's own load-and-answer time.

Resources are applied through the api's gRPC Apply, as the CLI does, without a CLI process per
change. Everything is stopped by pid at the end (``up`` with SIGINT, as Ctrl-C; MLServer with
its process group).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from bench.gateway.stack import _alive, _poll, _status
from modelplane.libs.auth.grpc_metadata import bearer_interceptors
from modelplane.libs.embedded_nats import free_port
from modelplane.libs.resources import convert, defaults
from modelplane.libs.resources.manifests import parse_manifest
from modelplane.proto import control_pb2, control_pb2_grpc
from modelplane.services.placement.profile import DEFAULT_PARALLEL_WORKERS
from tests.e2e.stack import UpProcess
from tests.helpers.iris import IrisModel
from tests.helpers.mlserver import spawn_mlserver
from tests.helpers.processes import stop_process_group

SELDON_API = "mlops.seldon.io/v1alpha1"
# Seconds MLServer may take to answer health checks (~4 s on an idle machine, more while the
# stack's own replicas start beside it).
MLSERVER_START_TIMEOUT = 120.0


class BenchUp(UpProcess):
    """``modelplane up`` (its ``extra_env`` carries the knobs) and where its endpoints are."""

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.ports.nats}"

    @property
    def api_address(self) -> str:
        return f"127.0.0.1:{self.ports.api_grpc}"

    @property
    def gateway_http(self) -> str:
        return f"127.0.0.1:{self.ports.gateway_http}"


class Api:
    """Applies manifests through the api's gRPC ControlService."""

    def __init__(self, address: str, token: str) -> None:
        self._channel = grpc.aio.insecure_channel(address, interceptors=bearer_interceptors(token))
        self._stub = control_pb2_grpc.ControlServiceStub(self._channel)

    async def apply(self, manifest: dict[str, Any]) -> None:
        resource = convert.resource_to_pb(parse_manifest(manifest))
        await self._stub.Apply(control_pb2.ApplyRequest(resource=resource), timeout=30)

    async def delete(self, kind: str, name: str) -> None:
        await self._stub.Delete(control_pb2.ResourceRef(kind=kind, name=name), timeout=30)

    async def close(self) -> None:
        await self._channel.close()


def server_manifest(name: str, replicas: int) -> dict[str, Any]:
    """A Seldon Server held at ``replicas`` (min = max), so the measured path is the model's."""
    return {
        "apiVersion": SELDON_API,
        "kind": "Server",
        "metadata": {"name": name},
        "spec": {
            "serverConfig": "mlserver",
            "replicas": replicas,
            "minReplicas": replicas,
            "maxReplicas": replicas,
        },
    }


def model_manifest(
    name: str,
    path: Path,
    *,
    replicas: int,
    min_replicas: int,
    max_replicas: int,
    target_requests: float | None = None,
    scale_down_delay_seconds: float = 0.0,
) -> dict[str, Any]:
    """A Seldon Model, autoscaled (KubeAI's fields under ``autoscaling``) when a target is given."""
    spec: dict[str, Any] = {
        "storageUri": f"file://{path}",
        "requirements": ["sklearn"],
        "replicas": replicas,
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
    }
    if target_requests is not None:
        spec["autoscaling"] = {
            "targetRequests": target_requests,
            "scaleDownDelaySeconds": scale_down_delay_seconds,
        }
    return {"apiVersion": SELDON_API, "kind": "Model", "metadata": {"name": name}, "spec": spec}


def replica_parallel_workers() -> int:
    """MLServer's ``parallel_workers`` on the stack's replicas (placement's profile rule)."""
    for config in defaults.builtin_server_configs():
        if config.meta.name == "mlserver":
            return config.spec.parallel_workers or DEFAULT_PARALLEL_WORKERS
    return DEFAULT_PARALLEL_WORKERS


class BareMLServer:
    """One MLServer process, no model at start, configured as the stack's replicas are.

    ``load_and_answer`` times what MLServer itself needs for a cold start of a model: the
    repository load of the model's files and the first inference.
    """

    def __init__(self, root: Path, model: IrisModel, name: str) -> None:
        self._root = root / "bare-mlserver"
        self.model = model
        self.name = name
        self.http = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self._root / "mlserver.log"
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        repo = self._root / "models"
        folder = repo / self.name
        shutil.copytree(self.model.path, folder)
        settings = json.loads((folder / "model-settings.json").read_text())
        settings["name"] = self.name
        (folder / "model-settings.json").write_text(json.dumps(settings))
        http_port = free_port()
        (repo / "settings.json").write_text(
            json.dumps(
                {
                    "http_port": http_port,
                    "grpc_port": free_port(),
                    "metrics_port": free_port(),
                    "load_models_at_startup": False,
                    "parallel_workers": replica_parallel_workers(),
                    "debug": False,
                }
            )
        )
        self.http = f"127.0.0.1:{http_port}"
        self._proc = spawn_mlserver(repo, self._log)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60))
        proc, session = self._proc, self._session

        async def ready() -> bool:
            _alive(proc, "bare MLServer", self._log)
            return await _status(session, f"http://{self.http}/v2/health/ready") == 200

        await _poll(ready, MLSERVER_START_TIMEOUT, "the bare MLServer to be ready")

    async def _post(self, path: str, body: bytes) -> None:
        assert self._session is not None
        url = f"http://{self.http}{path}"
        headers = {"Content-Type": "application/json"}
        async with self._session.post(url, data=body, headers=headers) as resp:
            payload = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"POST {url}: {resp.status} {payload[:300]!r}")

    async def load_and_answer(self, infer_body: bytes) -> tuple[float, float]:
        """(load seconds, first inference seconds) of a cold start; unloads afterwards."""
        started = time.perf_counter()
        await self._post(f"/v2/repository/models/{self.name}/load", b"{}")
        loaded = time.perf_counter()
        await self._post(f"/v2/models/{self.name}/infer", infer_body)
        answered = time.perf_counter()
        await self._post(f"/v2/repository/models/{self.name}/unload", b"{}")
        return loaded - started, answered - loaded

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._proc is not None:
            stop_process_group(self._proc, timeout=20)
            self._proc = None
