"""``http://`` and ``https://`` URIs: one file, unpacked when it is an archive (KServe parity).

``identity`` asks the server with a HEAD request for what it knows about the content (ETag,
Last-Modified, Content-Length); a server that says nothing (or refuses HEAD) gets the URI plus
``artifactVersion`` as identity, so bumping ``artifactVersion`` is how a user forces a refetch.

``download`` streams the body with aiohttp into the cache's empty directory. A name ending in
.tar, .tar.gz, .tgz or .zip is unpacked there through ``archives.unpack`` (which rejects members
escaping the directory); any other file is saved under its base name. Azure blob URLs
(``https://<account>.blob.core.windows.net/...``) are routed to the Azure fetcher by the
registry and never reach this one.

Every connection goes through ``egress.GuardedConnector``: an address (resolved, or reached by a
redirect) in a blocked network (``libs.egress``) stops the fetch with a permanent error naming
spec.storageUri, before anything is sent to it.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import aiohttp

from modelplane.libs.egress import DEFAULT_BLOCKED_NETWORKS, EgressPolicy
from modelplane.libs.errors import InvalidError, NotFoundError, RetryableError
from modelplane.libs.uris import redact_uri
from modelplane.services.storage.fetchers.archives import is_archive, unpack
from modelplane.services.storage.fetchers.base import FetchTarget, Progress
from modelplane.services.storage.fetchers.egress import GuardedConnector

# Seconds to wait for a connection / between two chunks of the body; a whole download may take
# as long as it needs (large models), but a stalled server must not hang a load forever.
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
CHUNK_BYTES = 1 << 20
# Used when a URL path has no base name (e.g. "https://host/").
FALLBACK_NAME = "download"


class HttpFetcher:
    """Downloads one file over HTTP(S), unpacking archives."""

    schemes: tuple[str, ...] = ("http", "https")
    in_place = False

    def __init__(
        self,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
        max_unpacked_bytes: int | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        self._egress = egress if egress is not None else EgressPolicy.parse(DEFAULT_BLOCKED_NETWORKS)
        # The download itself is capped by the cache's meter; this bounds what an archive unpacks to.
        self._max_unpacked = max_unpacked_bytes
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )

    def describe(self) -> str:
        return "http(s) file or archive"

    async def identity(self, target: FetchTarget) -> str:
        _file_name(target.uri)
        async with self._session(target.uri) as session:
            try:
                async with session.head(target.uri, allow_redirects=True) as resp:
                    if resp.status in (405, 501):
                        # HEAD not supported: nothing to compare, the user pins with artifactVersion.
                        return f"uri:{target.uri}|version:{target.artifact_version}"
                    _raise_for_status(resp.status, target.uri)
                    headers = resp.headers
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _unreachable(target.uri, exc) from exc
        parts = [
            f"{name.lower()}:{headers[name]}"
            for name in ("ETag", "Last-Modified", "Content-Length")
            if name in headers
        ]
        if not parts:
            parts = [f"uri:{target.uri}"]
        return "|".join([*parts, f"version:{target.artifact_version}"])

    async def download(self, target: FetchTarget, dest: Path, progress: Progress) -> None:
        name = _file_name(target.uri)
        archive = is_archive(name)
        # An archive is downloaded into a scratch folder inside dest (same file system, removed
        # afterwards) and unpacked next to it; a plain file goes straight to its final name.
        scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=dest)) if archive else None
        path = (scratch or dest) / name
        try:
            await self._stream(target.uri, path, progress)
            if scratch is not None:
                await asyncio.to_thread(
                    functools.partial(
                        unpack, path, dest, source=_shown(target.uri), max_bytes=self._max_unpacked
                    )
                )
        finally:
            if scratch is not None:
                await asyncio.to_thread(shutil.rmtree, scratch, True)

    def _session(self, uri: str) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=self._timeout, connector=GuardedConnector(self._egress, uri))

    async def _stream(self, uri: str, path: Path, progress: Progress) -> None:
        async with self._session(uri) as session:
            try:
                async with session.get(uri, allow_redirects=True) as resp:
                    _raise_for_status(resp.status, uri)
                    if resp.content_length is not None:
                        progress.total(resp.content_length)
                    out: BinaryIO = await asyncio.to_thread(path.open, "wb")
                    try:
                        async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                            await asyncio.to_thread(out.write, chunk)
                            progress.advance(len(chunk))
                    finally:
                        await asyncio.to_thread(out.close)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _unreachable(uri, exc) from exc


def _file_name(uri: str) -> str:
    parts = urlsplit(uri)
    if not parts.hostname:
        raise InvalidError(f"{_shown(uri)!r} names no host", field="spec.storageUri")
    name = PurePosixPath(unquote(parts.path)).name
    if name in ("", ".", ".."):
        return FALLBACK_NAME
    return name


def _shown(uri: str) -> str:
    """The URI for messages: without userinfo or query string (a presigned URL's signature)."""
    return redact_uri(uri)


def _raise_for_status(status: int, uri: str) -> None:
    if status < 400:
        return
    uri = _shown(uri)
    if status == 404:
        raise NotFoundError(f"{uri} does not exist (HTTP 404)", field="spec.storageUri")
    if status in (401, 403):
        raise InvalidError(
            f"access to {uri} was denied (HTTP {status}); check the model's secret",
            field="spec.storageUri",
        )
    if status == 429 or status >= 500:
        raise RetryableError(f"{uri} answered HTTP {status}", delay=5.0)
    raise InvalidError(f"{uri} answered HTTP {status}", field="spec.storageUri")


def _unreachable(uri: str, exc: BaseException) -> RetryableError:
    # aiohttp's messages name host and port, not the URL; a timeout has no message at all.
    why = str(exc) or type(exc).__name__
    return RetryableError(f"could not download {_shown(uri)}: {why}", delay=5.0)
