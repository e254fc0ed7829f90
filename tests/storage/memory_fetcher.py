"""A remote fetcher serving artifacts held in memory: the remote contract of fetchers/base.py,
with the knobs cache tests need (download count, a gate to hold a download open, a failure
after some bytes were written)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from modelplane.libs.errors import NotFoundError, RetryableError
from modelplane.services.storage.fetchers.base import FetchTarget, Progress

SCHEME = "mem"
CHUNK = 1024


@dataclass
class MemoryFetcher:
    """Serves ``mem://<name>`` from ``artifacts[name]`` (relative path -> bytes)."""

    artifacts: dict[str, dict[str, bytes]] = field(default_factory=dict)
    downloads: int = 0
    # When set, a download writes its first chunk, signals ``started`` and waits for ``gate``.
    gate: asyncio.Event | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    # When > 0, the next download raises after writing this many bytes (then the knob resets).
    fail_after: int = 0
    # The credentials each identity() call saw (one call per fetch: who asked, with what secret).
    seen_credentials: list[dict[str, str]] = field(default_factory=list)
    _identity_called: asyncio.Event = field(default_factory=asyncio.Event)

    schemes: tuple[str, ...] = (SCHEME,)
    in_place = False

    def describe(self) -> str:
        return "mem (tests)"

    def _files(self, target: FetchTarget) -> dict[str, bytes]:
        name = target.uri.removeprefix(f"{SCHEME}://")
        files = self.artifacts.get(name)
        if files is None:
            raise NotFoundError(f"no artifact at {target.uri}", field="spec.storageUri")
        return files

    async def wait_for_fetches(self, n: int) -> None:
        """Return once ``n`` fetches have asked for the identity (i.e. have joined the cache)."""
        while len(self.seen_credentials) < n:
            self._identity_called.clear()
            await self._identity_called.wait()

    async def identity(self, target: FetchTarget) -> str:
        self.seen_credentials.append(dict(target.credentials))
        self._identity_called.set()
        files = self._files(target)
        digest = hashlib.sha256()
        for rel in sorted(files):
            digest.update(f"{rel}:{hashlib.sha256(files[rel]).hexdigest()}\n".encode())
        return digest.hexdigest()

    async def download(self, target: FetchTarget, dest: Path, progress: Progress) -> None:
        self.downloads += 1
        files = self._files(target)
        progress.total(sum(len(data) for data in files.values()))
        fail_after, self.fail_after = self.fail_after, 0
        written = 0
        for rel, data in sorted(files.items()):
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as out:
                for start in range(0, len(data), CHUNK):
                    chunk = data[start : start + CHUNK]
                    out.write(chunk)
                    out.flush()
                    written += len(chunk)
                    progress.advance(len(chunk))
                    if fail_after and written >= fail_after:
                        raise RetryableError(f"connection to {target.uri} reset")
                    if self.gate is not None and not self.started.is_set():
                        self.started.set()
                        await self.gate.wait()
