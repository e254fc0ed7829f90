"""The storage handler: one transport-neutral entry point, ``fetch`` (and its ``lease`` form).

Design: the handler picks the fetcher for a URI. In-place fetchers (local paths, file://, pvc://)
answer with the existing path. Remote ones go through the content-addressed cache with the
model's credentials resolved from its secret; while a download runs the handler reports
progress (at most every ``progress_interval`` seconds, and once at the end) to a
``ProgressSink`` the composition root provides (NATS in production). The NATS adapter only
decodes the request and encodes the path or the error; it uses ``lease`` so the cache entry
cannot be evicted before the reply carrying its path is sent.

Credentials never reach a log line: events are logged with the URI stripped of any userinfo
and the secret's name only, and an error whose text contains a credential value is replaced
by one that does not.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from modelplane.libs.errors import ModelplaneError, PermanentError
from modelplane.libs.uris import redact_in, redact_uri
from modelplane.services.storage.cache import Checkout, MeterReading, StorageCache
from modelplane.services.storage.fetchers import FetcherRegistry
from modelplane.services.storage.fetchers.base import FetchTarget
from modelplane.services.storage.secrets import SecretStore

log = structlog.get_logger(__name__)

PHASE_DOWNLOADING = "downloading"
PHASE_CACHED = "cached"
PHASE_DONE = "done"
PHASE_FAILED = "failed"

# Credential values shorter than this are not searched for in error texts (too many false hits).
_MIN_SCRUBBED_LEN = 4


@dataclass(frozen=True, slots=True)
class ProgressKey:
    """Which model (and version) a fetch is for, so its progress can be attributed."""

    model: str
    version: int = 0


@dataclass(frozen=True, slots=True)
class FetchProgress:
    """How far the download of one model's artifact got."""

    model: str
    version: int
    uri: str
    bytes_done: int
    # 0 while the size is not known.
    bytes_total: int
    bytes_per_second: float
    phase: str


class ProgressSink(Protocol):
    """Where progress goes (the NATS adapter publishes it on the model's progress subject)."""

    async def publish(self, event: FetchProgress) -> None:
        """Deliver one event; may raise (the handler logs and goes on)."""


class StorageHandler:
    """Turns a storage URI (plus version and credentials name) into a local path."""

    def __init__(
        self,
        registry: FetcherRegistry,
        cache: StorageCache,
        secrets: SecretStore,
        progress: ProgressSink | None = None,
        progress_interval: float = 0.5,
    ) -> None:
        self._registry = registry
        self._cache = cache
        self._secrets = secrets
        self._progress = progress
        self._interval = progress_interval

    async def fetch(
        self,
        uri: str,
        artifact_version: str = "",
        secret_name: str = "",
        progress_key: ProgressKey | None = None,
    ) -> Path:
        """A local path holding the artifact of ``uri``; raises libs.errors types."""
        async with self.lease(uri, artifact_version, secret_name, progress_key) as path:
            return path

    @contextlib.asynccontextmanager
    async def lease(
        self,
        uri: str,
        artifact_version: str = "",
        secret_name: str = "",
        progress_key: ProgressKey | None = None,
    ) -> AsyncIterator[Path]:
        """Like ``fetch``; a cached path stays protected from eviction until the block ends."""
        target = self._registry.target(uri, artifact_version, secret_name)
        in_place, remote = self._registry.fetcher_for(target)
        shown = display_uri(target.uri)
        with structlog.contextvars.bound_contextvars(uri=shown, scheme=target.scheme or "path"):
            if in_place is not None:
                path = await in_place.locate(target)
                log.info("artifact_located", path=str(path))
                yield path
                return
            model = progress_key.model if progress_key is not None else ""
            credentials = await self._secrets.resolve(secret_name, model)
            # Route again with the secret: it may configure an Azure blob endpoint (path-style URLs).
            target = self._registry.target(uri, artifact_version, secret_name, credentials)
            _, remote = self._registry.fetcher_for(target)
            if remote is None:
                raise PermanentError(f"{shown} has no remote fetcher")
            try:
                async with self._cache.checkout(remote, target) as checkout:
                    path = await self._await_entry(checkout, target, progress_key)
                    yield path
            except ModelplaneError as exc:
                if _leaks(exc.message, credentials) or redact_in(exc.message, target.uri) != exc.message:
                    # from None: the cause (an SDK error) may quote the credential too.
                    raise _scrubbed(exc, credentials, target.uri) from None
                raise
            except Exception as exc:
                if _leaks(str(exc), credentials) or redact_in(str(exc), target.uri) != str(exc):
                    raise PermanentError(f"fetching {shown} failed ({type(exc).__name__})") from None
                raise

    async def _await_entry(
        self, checkout: Checkout, target: FetchTarget, progress_key: ProgressKey | None
    ) -> Path:
        if checkout.cached:
            path = await checkout.path()
            log.info("artifact_cached", path=str(path))
            await self._report(progress_key, target, checkout.meter.read(), PHASE_CACHED)
            return path
        await self._report(progress_key, target, checkout.meter.read(), PHASE_DOWNLOADING)
        while not await checkout.wait(self._interval):
            await self._report(progress_key, target, checkout.meter.read(), PHASE_DOWNLOADING)
        try:
            path = await checkout.path()
        except Exception:
            await self._report(progress_key, target, checkout.meter.read(), PHASE_FAILED)
            raise
        reading = checkout.meter.read()
        log.info("artifact_downloaded", path=str(path), bytes=reading.bytes_done)
        await self._report(progress_key, target, reading, PHASE_DONE)
        return path

    async def _report(
        self, key: ProgressKey | None, target: FetchTarget, reading: MeterReading, phase: str
    ) -> None:
        if self._progress is None or key is None or not key.model:
            return
        event = FetchProgress(
            model=key.model,
            version=key.version,
            uri=display_uri(target.uri),
            bytes_done=reading.bytes_done,
            bytes_total=reading.bytes_total,
            bytes_per_second=reading.bytes_per_second,
            phase=phase,
        )
        try:
            await self._progress.publish(event)
        except Exception as exc:  # progress is best effort; the fetch itself goes on
            log.debug("progress_publish_failed", error=repr(exc))


def display_uri(uri: str) -> str:
    """``uri`` without userinfo, query string (presigned URLs, SAS tokens) or fragment."""
    return redact_uri(uri)


def _leaks(text: str, credentials: Mapping[str, str]) -> bool:
    return any(len(v) >= _MIN_SCRUBBED_LEN and v in text for v in credentials.values())


def _scrubbed(exc: ModelplaneError, credentials: Mapping[str, str], uri: str) -> ModelplaneError:
    """``exc`` with every credential value in its message replaced by ``***``, the URI redacted."""
    message = redact_in(exc.message, uri)
    for value in credentials.values():
        if len(value) >= _MIN_SCRUBBED_LEN:
            message = message.replace(value, "***")
    exc.message = message
    exc.args = (message,)
    return exc
