"""Composition root of the storage service (``modelplane run storage``)."""

from __future__ import annotations

import structlog
from nats.aio.client import Client as NATS

from modelplane.libs.store import connect, disconnect
from modelplane.services.storage.cache import StorageCache
from modelplane.services.storage.fetchers import FetcherRegistry, default_registry
from modelplane.services.storage.handler import StorageHandler
from modelplane.services.storage.nats_adapter import NatsProgressPublisher, StorageNatsAdapter
from modelplane.services.storage.secrets import SecretStore
from modelplane.services.storage.settings import StorageSettings

log = structlog.get_logger(__name__)


class App:
    """The storage service: one NATS connection serving fetch requests from one node-wide cache."""

    name = "storage"

    def __init__(self, settings: StorageSettings, registry: FetcherRegistry | None = None) -> None:
        self.settings = settings
        self.shutdown_timeout = settings.shutdown_timeout
        self.cache = StorageCache(settings.cache_dir, settings.cache_max_bytes, settings.max_artifact_bytes)
        self.secrets = SecretStore(settings.secrets_dir, settings.default_secret_name)
        self.registry = (
            registry
            if registry is not None
            else default_registry(
                settings.pvc_root,
                settings.local_storage_roots(),
                settings.max_artifact_bytes,
                settings.egress_policy(),
            )
        )
        self.handler: StorageHandler | None = None
        self._nc: NATS | None = None
        self._adapter: StorageNatsAdapter | None = None
        self._closed = False

    async def start(self) -> None:
        await self.cache.start()
        self._nc = await connect(
            self.settings.nats_url, name="modelplane-storage", creds=self.settings.nats_creds
        )
        self.handler = StorageHandler(
            self.registry, self.cache, self.secrets, progress=NatsProgressPublisher(self._nc)
        )
        self._adapter = StorageNatsAdapter(self._nc, self.handler, lease_timeout=self.settings.lease_timeout)
        await self._adapter.start()
        log.info(
            "storage_serving",
            cache_dir=str(self.settings.cache_dir),
            cache_max_bytes=self.settings.cache_max_bytes,
            schemes=self.registry.schemes(),
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Stop taking requests first, then the downloads they were waiting for.
        if self._adapter is not None:
            await self._adapter.close()
        await self.cache.close()
        await disconnect(self._nc, drain=True)


def create() -> App:
    # pydantic fills the fields from the environment; mypy cannot see CommonSettings' defaults.
    return App(StorageSettings())
