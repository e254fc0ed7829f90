"""Composition root of the api service: NATS, the handler, the gRPC and REST servers."""

from __future__ import annotations

import grpc
import structlog
from aiohttp import web
from nats.aio.client import Client as NATS

from modelplane.libs import store
from modelplane.libs.store import disconnect
from modelplane.proto import control_pb2_grpc
from modelplane.services.api import rest
from modelplane.services.api.grpc_servicer import ControlServicer
from modelplane.services.api.handler import ControlHandler
from modelplane.services.api.nats_progress import NatsProgressFeed
from modelplane.services.api.settings import ApiSettings
from modelplane.services.api.storage_policy import StoragePolicy

log = structlog.get_logger(__name__)


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
        return f"http://{self.settings.host}:{self.http_port}"

    async def start(self) -> None:
        s = self.settings
        self._nc = await store.connect(s.nats_url, name="modelplane-api")
        js = self._nc.jetstream()
        await store.ensure_buckets(js)
        policy = StoragePolicy(s.local_storage_roots())
        handler = self._handler = await ControlHandler.open(js, self._nc, NatsProgressFeed(self._nc), policy)

        self._grpc = grpc.aio.server()
        control_pb2_grpc.add_ControlServiceServicer_to_server(ControlServicer(handler), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port(f"{s.host}:{s.grpc_port}")
        await self._grpc.start()

        self._runner = web.AppRunner(rest.create_app(handler), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.host, s.http_port)
        await site.start()
        self.http_port = self._bound_http_port(site)
        log.info("api_listening", grpc=self.grpc_address, http=self.http_url)

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
