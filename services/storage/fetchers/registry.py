"""URI -> fetcher look-up; ``default_registry`` registers every scheme this build supports.

Most URIs are routed by their scheme. One exception: Azure blob storage has no scheme of its
own (``https://<account>.blob.core.windows.net/<container>/<path>``), so http(s) URLs that
the Azure fetcher recognises (``azure.is_azure_blob_url``: that host, or the path-style URL of
a configured blob endpoint such as Azurite's) get the scheme ``azure-blob``; other http(s)
URLs go to the HTTP fetcher. A blob endpoint may come from the model's secret, so the handler
routes remote URIs again once the secret is resolved.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, cast

from modelplane.libs.egress import EgressPolicy
from modelplane.libs.errors import InvalidError
from modelplane.libs.local_paths import LocalRoots
from modelplane.services.storage.fetchers import azure
from modelplane.services.storage.fetchers.azure import AzureBlobFetcher
from modelplane.services.storage.fetchers.base import FetchTarget, Progress
from modelplane.services.storage.fetchers.gcs import GcsFetcher
from modelplane.services.storage.fetchers.http import HttpFetcher
from modelplane.services.storage.fetchers.huggingface import HuggingFaceFetcher
from modelplane.services.storage.fetchers.local import LocalFetcher
from modelplane.services.storage.fetchers.pvc import PvcFetcher
from modelplane.services.storage.fetchers.s3 import S3Fetcher

# RFC 3986 scheme followed by "://"; anything else (including "C:/x" style drive letters) is a path.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
# The scheme the registry gives Azure blob URLs (the Azure fetcher lists it in ``schemes``).
AZURE_BLOB_SCHEME = azure.SCHEME


def scheme_of(uri: str, credentials: Mapping[str, str] | None = None) -> str:
    """The lower-cased routing scheme, "" for a plain path, ``azure-blob`` for Azure blob URLs.

    ``credentials``: the model's secret, which may configure a blob endpoint (else the
    process environment may).
    """
    match = _SCHEME.match(uri)
    if not match:
        return ""
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        endpoint = azure.blob_endpoint(credentials or {}) or azure.blob_endpoint(os.environ)
        try:
            if azure.is_azure_blob_url(uri, endpoint or None):
                return AZURE_BLOB_SCHEME
        except ValueError:  # not a parseable URL: the HTTP fetcher reports it
            pass
    return scheme


class InPlaceFetcher(Protocol):
    """The in-place half of ``base.Fetcher`` (what local, file:// and pvc:// implement)."""

    schemes: tuple[str, ...]
    in_place: bool

    def describe(self) -> str: ...

    async def locate(self, target: FetchTarget) -> Path: ...


class RemoteFetcher(Protocol):
    """The remote half of ``base.Fetcher`` (what s3, gs, azure, http(s) and hf implement)."""

    schemes: tuple[str, ...]
    in_place: bool

    def describe(self) -> str: ...

    async def identity(self, target: FetchTarget) -> str: ...

    async def download(self, target: FetchTarget, dest: Path, progress: Progress) -> None: ...


AnyFetcher = InPlaceFetcher | RemoteFetcher


class FetcherRegistry:
    """Finds the fetcher for a URI."""

    def __init__(self, fetchers: Sequence[AnyFetcher]) -> None:
        self._by_scheme: dict[str, AnyFetcher] = {}
        self._fetchers = list(fetchers)
        for fetcher in fetchers:
            missing = [
                name
                for name in (("locate",) if fetcher.in_place else ("identity", "download"))
                if not callable(getattr(fetcher, name, None))
            ]
            if missing:
                raise TypeError(f"{type(fetcher).__name__} lacks {', '.join(missing)}")
            for scheme in fetcher.schemes:
                self._by_scheme[scheme] = fetcher

    def supported(self) -> str:
        return ", ".join(f.describe() for f in self._fetchers)

    def schemes(self) -> list[str]:
        return sorted(self._by_scheme)

    def target(
        self,
        uri: str,
        artifact_version: str = "",
        secret_name: str = "",
        credentials: Mapping[str, str] | None = None,
    ) -> FetchTarget:
        if not uri.strip():
            raise InvalidError("a storage URI is required", field="spec.storageUri")
        return FetchTarget(
            uri=uri.strip(),
            scheme=scheme_of(uri.strip(), credentials),
            artifact_version=artifact_version,
            secret_name=secret_name,
            credentials=credentials if credentials is not None else {},
        )

    def fetcher_for(self, target: FetchTarget) -> tuple[InPlaceFetcher, None] | tuple[None, RemoteFetcher]:
        """The fetcher of ``target``'s scheme, in the slot of its kind (in place, remote)."""
        fetcher = self._by_scheme.get(target.scheme)
        if fetcher is None:
            raise InvalidError(
                f"unsupported scheme {target.scheme!r} (supported: {self.supported()})",
                field="spec.storageUri",
            )
        # The constructor checked each fetcher has the methods its kind needs.
        if fetcher.in_place:
            return cast(InPlaceFetcher, fetcher), None
        return None, cast(RemoteFetcher, fetcher)


def default_registry(
    pvc_root: Path,
    local_roots: LocalRoots,
    max_artifact_bytes: int | None = None,
    egress: EgressPolicy | None = None,
) -> FetcherRegistry:
    """Every scheme this build supports; ``pvc://<claim>/<path>`` resolves under ``pvc_root``,
    local paths only inside ``local_roots``; archives unpack to at most ``max_artifact_bytes``;
    http(s) and hf connect to no address ``egress`` blocks (None: the default blocked networks)."""
    return FetcherRegistry(
        [
            LocalFetcher(local_roots),
            PvcFetcher(pvc_root),
            S3Fetcher(),
            GcsFetcher(),
            AzureBlobFetcher(),
            HttpFetcher(max_unpacked_bytes=max_artifact_bytes, egress=egress),
            HuggingFaceFetcher(egress=egress),
        ]
    )
