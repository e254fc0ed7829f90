"""The storage handler: one transport-neutral entry point, ``fetch``.

Design: the handler owns the fetcher registry and logs each fetch with its URI bound; the NATS
adapter only decodes the request and encodes the path or the error. Later work (content-addressed
cache, de-duplicated concurrent fetches, progress) belongs here, not in the adapter.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from modelplane.services.storage.fetchers import FetcherRegistry

log = structlog.get_logger(__name__)


class StorageHandler:
    """Turns a storage URI (plus version and credentials name) into a local path."""

    def __init__(self, registry: FetcherRegistry) -> None:
        self._registry = registry

    async def fetch(self, uri: str, artifact_version: str = "", secret_name: str = "") -> Path:
        target = self._registry.target(uri, artifact_version, secret_name)
        path = await self._registry.fetch(target)
        log.info("artifact_fetched", uri=target.uri, scheme=target.scheme or "path", path=str(path))
        return path
