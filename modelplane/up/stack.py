"""The local stack behind `modelplane up`.

Start order: NATS (embedded unless MODELPLANE_NATS_URL names one) -> storage, scheduler,
status, api, gateway, dataflow, autoscaler -> built-in ServerConfigs and the default Server
`mlserver` (applied through the api, only when absent, so user edits survive restarts) -> one
placement agent per Server replica. Stop order is chosen so a restart finds its state intact:
the autoscaler first (it would read the quiet that follows as "no load"), the gateway (no new
traffic), the dataflow workers (requests they leave unfinished are redelivered at the next
start), then the scheduler (so it does not reschedule models while replicas shut down), then the
agents (then any model server a crashed agent left running is swept, see launcher.stop), the
remaining services, and NATS last. Desired and observed state live in JetStream
under the state directory, so the next `up` restores every model.

Before any service starts, ``up.auth`` makes the state dir private and the api tokens (the admin
token the CLI reads, and one per internal caller, given to that process only). With
``tls_cert``/``tls_key`` the api and the gateway serve TLS only (gRPC and REST), and their
internal callers trust that certificate: `up` and the autoscaler (api), the dataflow workers
(gateway, https://). The autoscaler's metrics port stays plain HTTP: it is read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import structlog
from nats.aio.client import Client as NATS

from modelplane.libs.auth.grpc_metadata import bearer_interceptors
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.errors import RetryableError
from modelplane.libs.local_paths import LOCAL_ROOTS_ENV, default_roots, prepare_state_dir
from modelplane.libs.nats_credentials import redact_url
from modelplane.libs.resources import convert, defaults
from modelplane.libs.resources.replica_cap import cap_from_env
from modelplane.libs.resources.types import Resource
from modelplane.libs.store import connect, disconnect, ensure_buckets
from modelplane.libs.tasks import TaskSupervisor
from modelplane.libs.tls import grpc_channel_credentials
from modelplane.proto import control_pb2, control_pb2_grpc
from modelplane.up.auth import UpCredentials, bootstrap
from modelplane.up.children import Child, modelplane_argv
from modelplane.up.launcher import ReplicaLauncher
from modelplane.up.nats_access import EmbeddedUsers, NatsAccess, SharedCredentials, service_env

log = structlog.get_logger(__name__)

# Services in start order; the gateway is stopped first and the scheduler second (see above).
SERVICE_ORDER = ("storage", "scheduler", "status", "api", "gateway", "dataflow", "autoscaler")


@dataclass(frozen=True)
class UpOptions:
    state_dir: Path
    nats_url: str | None = None
    # Credentials for an external server (nats_url); the embedded one gets generated users.
    nats_creds: Path | None = None
    nats_port: int = 4222
    host: str = "127.0.0.1"
    api_grpc_port: int = 9004
    api_http_port: int = 9080
    gateway_http_port: int = 9000
    gateway_grpc_port: int = 9001
    autoscaler_metrics_port: int = 9010
    start_timeout: float = 60.0
    # PEM certificate and key: the api and the gateway serve gRPC and REST over TLS with them.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # The folder `up` was started from: an allowed root of local storageUris (with <state>/models).
    work_dir: Path = field(default_factory=Path.cwd)


class Stack:
    def __init__(self, options: UpOptions) -> None:
        self.options = options
        self._tasks = TaskSupervisor("up")
        self._nats: EmbeddedNats | None = None
        self._nats_access: NatsAccess = SharedCredentials(options.nats_creds)
        self._nc: NATS | None = None
        self._services: dict[str, Child] = {}
        self._launcher: ReplicaLauncher | None = None
        self._credentials: UpCredentials | None = None
        self._closed = False

    @property
    def nats_url(self) -> str:
        if self.options.nats_url:
            return self.options.nats_url
        assert self._nats is not None
        return self._nats.url

    def _env(self) -> dict[str, str]:
        o = self.options
        return {
            **o.extra_env,
            "MODELPLANE_NATS_URL": self.nats_url,
            "MODELPLANE_STATE_DIR": str(o.state_dir),
            "MODELPLANE_API_HOST": o.host,
            "MODELPLANE_API_GRPC_PORT": str(o.api_grpc_port),
            "MODELPLANE_API_HTTP_PORT": str(o.api_http_port),
            # Foreign kinds' statuses show where their clients reach them.
            "MODELPLANE_API_GATEWAY_URL": f"{self._http_scheme}://{o.host}:{o.gateway_http_port}",
            "MODELPLANE_API_GATEWAY_GRPC": f"{o.host}:{o.gateway_grpc_port}",
            "MODELPLANE_GATEWAY_HOST": o.host,
            "MODELPLANE_GATEWAY_HTTP_PORT": str(o.gateway_http_port),
            "MODELPLANE_GATEWAY_GRPC_PORT": str(o.gateway_grpc_port),
            "MODELPLANE_AUTOSCALER_HOST": o.host,
            "MODELPLANE_AUTOSCALER_METRICS_PORT": str(o.autoscaler_metrics_port),
            # Graph steps (and pipeline steps, if asked) call their models through the gateway.
            "MODELPLANE_DATAFLOW_GATEWAY_URL": f"{self._http_scheme}://{o.host}:{o.gateway_http_port}",
            # The autoscaler applies replica changes through the api.
            "MODELPLANE_AUTOSCALER_API_ADDRESS": f"{o.host}:{o.api_grpc_port}",
            "MODELPLANE_STORAGE_CACHE_DIR": str(o.state_dir / "cache"),
            # Model.spec.secretName names <state>/secrets/<name>.env (or a folder of key files).
            "MODELPLANE_STORAGE_SECRETS_DIR": str(o.state_dir / "secrets"),
            "MODELPLANE_STORAGE_PVC_ROOT": str(o.state_dir / "volumes"),
            # Passed explicitly so the api and storage agree whatever their working directory.
            LOCAL_ROOTS_ENV: o.extra_env.get(LOCAL_ROOTS_ENV)
            or os.environ.get(LOCAL_ROOTS_ENV)
            or os.pathsep.join(str(r) for r in default_roots(o.state_dir, o.work_dir)),
        }

    @property
    def _http_scheme(self) -> str:
        return "https" if self.options.tls_cert is not None else "http"

    def _service_env(self, service: str) -> dict[str, str]:
        """What only ``service`` gets: its token, and the TLS files of what it serves or calls."""
        o = self.options
        assert self._credentials is not None
        env = self._credentials.env_for(service)
        if o.tls_cert is not None and o.tls_key is not None:
            cert, key = str(o.tls_cert), str(o.tls_key)
            if service == "api":
                env.update(MODELPLANE_API_TLS_CERT=cert, MODELPLANE_API_TLS_KEY=key)
            elif service == "gateway":
                env.update(MODELPLANE_GATEWAY_TLS_CERT=cert, MODELPLANE_GATEWAY_TLS_KEY=key)
            elif service == "autoscaler":
                env["MODELPLANE_AUTOSCALER_API_CA"] = cert
            elif service == "dataflow":
                # The certificate is its own CA here (or its chain is the bundle to trust).
                env["MODELPLANE_DATAFLOW_GATEWAY_CA"] = cert
        return env

    async def start(self) -> None:
        o = self.options
        # Checked before anything starts: a bad value is the user's to fix, not a half-started stack.
        replica_cap = cap_from_env({**os.environ, **o.extra_env})
        # 0700 state dir, secrets and auth folders before anything is written into them.
        await asyncio.to_thread(prepare_state_dir, o.state_dir)
        (o.state_dir / "logs").mkdir(exist_ok=True)
        if not o.nats_url:
            # No anonymous access: one user per service, generated at each start (nats_access).
            users = EmbeddedUsers(o.state_dir / "auth")
            self._nats = EmbeddedNats(
                store_dir=o.state_dir / "nats",
                port=o.nats_port,
                log_file=o.state_dir / "logs" / "nats.log",
                config_file=users.write_service_users(),
            )
            await self._nats.start()
            users.attach(self._nats)
            self._nats_access = users
            log.info("nats_started", url=self._nats.url, pid=self._nats.pid, store=str(o.state_dir / "nats"))
        self._nc = await connect(
            self.nats_url, name="modelplane-up", creds=self._nats_access.creds_file("up")
        )
        js = self._nc.jetstream()
        await ensure_buckets(js)
        self._credentials = await bootstrap(js, o.state_dir)
        env = self._env()
        for name in SERVICE_ORDER:
            child_env = {**env, **self._service_env(name), **service_env(self._nats_access, name)}
            child = Child(name, modelplane_argv("run", name), child_env, self._tasks)
            self._services[name] = child
            await child.start()
        await _wait_for_port(o.host, o.api_grpc_port, o.start_timeout, "api")
        await _wait_for_port(o.host, o.gateway_http_port, o.start_timeout, "gateway")
        await self._apply_defaults()
        self._launcher = ReplicaLauncher(
            js,
            o.state_dir,
            env,
            self._tasks,
            max_server_replicas=replica_cap,
            nats_access=self._nats_access,
        )
        await self._launcher.start()

    async def _apply_defaults(self) -> None:
        """Create the built-in ServerConfigs and the default Server unless they already exist."""
        resources: list[Resource] = [*defaults.builtin_server_configs(), defaults.default_server()]
        async with self._api_channel() as channel:
            stub = control_pb2_grpc.ControlServiceStub(channel)
            for resource in resources:
                ref = control_pb2.ResourceRef(kind=resource.kind, name=resource.meta.name)
                try:
                    await stub.Get(ref, timeout=10)
                    continue
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.NOT_FOUND:
                        raise RetryableError(f"api did not answer: {exc.details()}") from exc
                await stub.Apply(
                    control_pb2.ApplyRequest(resource=convert.resource_to_pb(resource)), timeout=10
                )
                log.info("default_applied", kind=resource.kind, name=resource.meta.name)

    def _api_channel(self) -> grpc.aio.Channel:
        """A channel to the api with `up`'s own token (over TLS when the api serves it)."""
        o = self.options
        assert self._credentials is not None
        target = f"{o.host}:{o.api_grpc_port}"
        interceptors = bearer_interceptors(self._credentials.up_token)
        if o.tls_cert is not None:
            return grpc.aio.secure_channel(
                target, grpc_channel_credentials(o.tls_cert), interceptors=interceptors
            )
        return grpc.aio.insecure_channel(target, interceptors=interceptors)

    def banner(self) -> str:
        o = self.options
        scheme = self._http_scheme
        # gRPC has no URL scheme: say TLS in words (clients need their CA then).
        grpc_tls = " (TLS)" if o.tls_cert is not None else ""
        return (
            f"modelplane is up (state in {o.state_dir})\n"
            f"  inference  REST {scheme}://{o.host}:{o.gateway_http_port}   "
            f"gRPC {o.host}:{o.gateway_grpc_port}{grpc_tls}\n"
            f"  control    gRPC {o.host}:{o.api_grpc_port}{grpc_tls}   REST {scheme}://{o.host}:{o.api_http_port}\n"
            f"  admin token in {o.state_dir / 'auth' / 'admin.token'} (the CLI reads it)\n"
            f"  autoscaler metrics http://{o.host}:{o.autoscaler_metrics_port}/metrics\n"
            f"  NATS       {redact_url(self.nats_url)}\n"
            "Press Ctrl-C to stop."
        )

    async def close(self) -> None:
        """Stop everything in order (idempotent)."""
        if self._closed:
            return
        self._closed = True
        # The autoscaler first: with the gateways gone quiet it would read "no load" and scale
        # models down. The dataflow workers right after the gateway.
        for name in ("autoscaler", "gateway", "dataflow", "scheduler"):
            if name in self._services:
                await self._services[name].stop()
        if self._launcher is not None:
            await self._launcher.stop()
        for name in reversed(SERVICE_ORDER):
            if name in self._services:
                await self._services[name].stop()
        await self._tasks.close()
        await disconnect(self._nc)
        if self._nats is not None:
            await self._nats.stop()
            log.info("nats_stopped")


async def _wait_for_port(host: str, port: int, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise RetryableError(
        f"{what} did not listen on {host}:{port} within {timeout:.0f}s (see its log lines above)"
    )
