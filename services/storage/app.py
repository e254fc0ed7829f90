"""Composition root of the storage service (``modelplane run storage``)."""

from __future__ import annotations

import structlog
from nats.aio.client import Client as NATS

from modelplane.libs.store import connect, disconnect
from modelplane.services.storage.fetchers import default_registry
from modelplane.services.storage.handler import StorageHandler
from modelplane.services.storage.nats_adapter import StorageNatsAdapter
from modelplane.services.storage.settings import StorageSettings

log = structlog.get_logger(__name__)


class App:
    """The storage service: one NATS connection serving fetch requests."""

    name = "storage"

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self.shutdown_timeout = settings.shutdown_timeout
        self.handler = StorageHandler(default_registry())
        self._nc: NATS | None = None
        self._adapter: StorageNatsAdapter | None = None
        self._closed = False

    async def start(self) -> None:
        self.settings.cache_dir.mkdir(parents=True, exist_ok=True)
        self._nc = await connect(self.settings.nats_url, name="modelplane-storage")
        self._adapter = StorageNatsAdapter(self._nc, self.handler)
        await self._adapter.start()
        log.info("storage_serving", cache_dir=str(self.settings.cache_dir))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._adapter is not None:
            await self._adapter.close()
        await disconnect(self._nc, drain=True)


def create() -> App:
    # pydantic fills the fields from the environment; mypy cannot see CommonSettings' defaults.
    return App(StorageSettings())
