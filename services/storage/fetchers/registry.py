"""Scheme -> fetcher look-up. New schemes (s3, gs, azure, http, hf, pvc) register one object each."""

from __future__ import annotations

import re
from pathlib import Path

from modelplane.libs.errors import InvalidError
from modelplane.services.storage.fetchers.base import Fetcher, FetchTarget
from modelplane.services.storage.fetchers.local import LocalFetcher

# RFC 3986 scheme followed by "://"; anything else (including "C:/x" style drive letters) is a path.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


def scheme_of(uri: str) -> str:
    """The lower-cased URI scheme, or "" for a plain path."""
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else ""


class FetcherRegistry:
    """Finds the fetcher for a URI by its scheme."""

    def __init__(self, fetchers: list[Fetcher]) -> None:
        self._by_scheme: dict[str, Fetcher] = {}
        self._fetchers = list(fetchers)
        for fetcher in fetchers:
            for scheme in fetcher.schemes:
                self._by_scheme[scheme] = fetcher

    def supported(self) -> str:
        return ", ".join(f.describe() for f in self._fetchers)

    def target(self, uri: str, artifact_version: str = "", secret_name: str = "") -> FetchTarget:
        if not uri.strip():
            raise InvalidError("a storage URI is required", field="spec.storageUri")
        return FetchTarget(
            uri=uri.strip(),
            scheme=scheme_of(uri.strip()),
            artifact_version=artifact_version,
            secret_name=secret_name,
        )

    async def fetch(self, target: FetchTarget) -> Path:
        fetcher = self._by_scheme.get(target.scheme)
        if fetcher is None:
            raise InvalidError(
                f"unsupported scheme {target.scheme!r} (supported: {self.supported()})",
                field="spec.storageUri",
            )
        return await fetcher.fetch(target)


def default_registry() -> FetcherRegistry:
    """Every scheme this build supports."""
    return FetcherRegistry([LocalFetcher()])
