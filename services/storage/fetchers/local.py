"""Local paths and ``file://`` URIs: nothing to download, only check the path exists."""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.services.storage.fetchers.base import FetchTarget

FILE_PREFIX = "file://"


class LocalFetcher:
    """Serves artifacts that are already on this machine, in place (no copy)."""

    schemes: tuple[str, ...] = ("", "file")
    in_place = True

    def describe(self) -> str:
        return "file, local path"

    async def locate(self, target: FetchTarget) -> Path:
        raw = target.uri[len(FILE_PREFIX) :] if target.uri.startswith(FILE_PREFIX) else target.uri
        if not raw:
            raise InvalidError("the storage URI names no path", field="spec.storageUri")
        # file:///abs/path keeps its leading slash; file://rel/path and plain relative paths resolve
        # against the working directory of this process (what `modelplane up` users expect).
        path, exists = await asyncio.to_thread(_resolve, raw)
        if not exists:
            raise NotFoundError(f"artifact path {path} does not exist", field="spec.storageUri")
        return path


def _resolve(raw: str) -> tuple[Path, bool]:
    path = Path(raw).expanduser().resolve()
    return path, path.exists()
