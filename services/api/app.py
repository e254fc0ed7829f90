"""Composition root of the api service: NATS, the handler, the gRPC and REST servers."""

from __future__ import annotations

import grpc
import structlog
from aiohttp import web
from nats.aio.client import Client as NATS

from modelplane.libs import store
from modelplane.libs.resources.importers.base import StatusContext
from modelplane.libs.store import disconnect
from modelplane.libs.tls import TlsFiles, grpc_server_credentials, server_ssl_context, tls_files
from modelplane.proto import control_pb2_grpc
from modelplane.services.api import rest
from modelplane.services.api.grpc_servicer import ControlServicer
from modelplane.services.api.handler import ControlHandler
from modelplane.services.api.nats_progress import NatsProgressFeed
from modelplane.services.api.settings import ApiSettings
from modelplane.services.api.storage_policy import StoragePolicy

log = structlog.get_logger(__name__)

# Names of the loopback interface a browser may use for the same api.
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]"})


class App:
    """The api process: start() binds both ports; close() stops them, then NATS (idempotent)."""

    name = "api"

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.shutdown_timeout = settings.shutdown_timeout
        self._nc: NATS | None = None
        self._grpc: grpc.aio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._handler: ControlHandler | None = None
        # Ports actually bound (differ from the settings when those say 0).
        self.grpc_port = 0
        self.http_port = 0

    @property
    def handler(self) -> ControlHandler:
        """The started handler (RuntimeError before start or after close)."""
        if self._handler is None:
            raise RuntimeError("the api is not started")
        return self._handler

    @property
    def grpc_address(self) -> str:
        return f"{self.settings.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{self._scheme}://{self.settings.host}:{self.http_port}"

    @property
    def _scheme(self) -> str:
        return "https" if self.settings.tls_cert else "http"

    def _origins(self) -> frozenset[str]:
        """The origins of this api's own REST address, as a browser would name them."""
        host = self.settings.host
        hosts = {f"[{host}]" if ":" in host else host}
        if host in _LOOPBACK or f"[{host}]" in _LOOPBACK:
            hosts |= _LOOPBACK
        return frozenset(f"{self._scheme}://{host}:{self.http_port}" for host in hosts)

    async def start(self) -> None:
        s = self.settings
        self._nc = await store.connect(s.nats_url, name="modelplane-api", creds=s.nats_creds)
        js = self._nc.jetstream()
        await store.ensure_buckets(js)
        policy = StoragePolicy(s.local_storage_roots(), s.storage_egress_policy())
        handler = self._handler = await ControlHandler.open(
            js,
            self._nc,
            NatsProgressFeed(self._nc),
            max_server_replicas=s.max_server_replicas,
            storage_policy=policy,
            status_context=StatusContext(gateway_url=s.gateway_url.rstrip("/"), gateway_grpc=s.gateway_grpc),
        )

        tls = tls_files(s.tls_cert, s.tls_key, field="api_tls")

        self._grpc = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", s.max_grpc_message_bytes),
                ("grpc.max_send_message_length", -1),
            ]
        )
        control_pb2_grpc.add_ControlServiceServicer_to_server(ControlServicer(handler), self._grpc)
        self.grpc_port = self._add_grpc_port(f"{s.host}:{s.grpc_port}", tls)
        await self._grpc.start()

        # The REST app needs its bound port to know its own origin: bind first, then serve.
        rest_app = rest.create_app(handler, s.max_body_bytes)
        self._runner = web.AppRunner(rest_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, s.host, s.http_port, ssl_context=server_ssl_context(tls) if tls else None
        )
        await site.start()
        self.http_port = self._bound_http_port(site)
        rest_app[rest.ORIGINS_KEY].update(self._origins())
        log.info("api_listening", grpc=self.grpc_address, http=self.http_url, tls=tls is not None)

    def _add_grpc_port(self, address: str, tls: TlsFiles | None) -> int:
        assert self._grpc is not None
        if tls is None:
            return int(self._grpc.add_insecure_port(address))
        return int(self._grpc.add_secure_port(address, grpc_server_credentials(tls)))

    def _bound_http_port(self, site: web.TCPSite) -> int:
        server = site._server  # aiohttp exposes the bound socket only here
        sockets = getattr(server, "sockets", None) or ()
        return int(sockets[0].getsockname()[1]) if sockets else self.settings.http_port

    async def close(self) -> None:
        grpc_server, self._grpc = self._grpc, None
        runner, self._runner = self._runner, None
        nc, self._nc = self._nc, None
        handler, self._handler = self._handler, None
        if grpc_server is not None:
            # Open watch streams are cancelled after the grace period.
            await grpc_server.stop(grace=min(2.0, self.shutdown_timeout))
        if handler is not None:
            await handler.close()
        if runner is not None:
            await runner.cleanup()
        await disconnect(nc)


def create() -> App:
    """Build the api from MODELPLANE_API_* (and MODELPLANE_*) environment variables."""
    # pydantic-settings fills the fields from the environment; mypy cannot see that.
    return App(ApiSettings())
