"""Local paths and ``file://`` URIs: served in place, confined to the allowed local roots.

The path is resolved (every symlink followed) and must lie inside an allowed root and outside
the state directory (``libs.local_paths``): the api checked the same rule at apply time, but a
symlink may have been created since, so the storage service checks again at every fetch.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.libs.local_paths import LocalRoots, local_path_of
from modelplane.services.storage.fetchers.base import FetchTarget


class LocalFetcher:
    """Serves artifacts that are already on this machine, in place (no copy), inside ``roots``."""

    schemes: tuple[str, ...] = ("", "file")
    in_place = True

    def __init__(self, roots: LocalRoots) -> None:
        self._roots = roots

    def describe(self) -> str:
        return "file, local path"

    async def locate(self, target: FetchTarget) -> Path:
        raw = local_path_of(target.uri)
        if not raw:
            raise InvalidError("the storage URI names no path", field="spec.storageUri")
        # file:///abs/path keeps its leading slash; file://rel/path and plain relative paths resolve
        # against the working directory of this process (what `modelplane up` users expect).
        path, exists = await asyncio.to_thread(self._resolve, raw)
        if not exists:
            raise NotFoundError(f"artifact path {path} does not exist", field="spec.storageUri")
        return path

    def _resolve(self, raw: str) -> tuple[Path, bool]:
        path = self._roots.confine(raw)
        return path, path.exists()
