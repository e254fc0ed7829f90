"""The placement agent's logic: accept load/unload commands, do them in order per model, report.

Design: a command is answered at once (accepted, or rejected with a reason) and its work queued on
``KeyedWorkers`` keyed by model name, so one model's load and unload never overtake each other
while different models load in parallel. Each step's outcome goes out as a ``Report``; the set of
models the server holds is published to the replica registration after every change. Transport
types stay out: the NATS adapter converts commands and reports.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import structlog

from modelplane.libs.errors import ModelplaneError
from modelplane.libs.tasks import KeyedWorkers
from modelplane.services.placement.model_server import RepositoryEntry
from modelplane.services.placement.runtimes import ModelLayout
from modelplane.services.placement.types import Decision, LoadRequest, Outcome, Report, UnloadRequest

log = structlog.get_logger(__name__)

READY = "READY"


class ArtifactSource(Protocol):
    async def fetch(
        self, uri: str, artifact_version: str, secret_name: str, *, model: str = "", version: int = 0
    ) -> Path: ...


class ModelServer(Protocol):
    async def index(self) -> list[RepositoryEntry]: ...

    async def load(self, name: str) -> None: ...

    async def unload(self, name: str) -> bool: ...


class ReportSink(Protocol):
    async def report(self, report: Report) -> None: ...


class LoadedModelsSink(Protocol):
    async def loaded_models_changed(self, snapshot: Callable[[], list[str]]) -> None:
        """Publish ``snapshot()``, evaluated when it is this change's turn to be written."""


class PlacementHandler:
    """Loads and unloads model versions on one replica's model server."""

    def __init__(
        self,
        *,
        repo: Path,
        layout: ModelLayout,
        model_server: ModelServer,
        storage: ArtifactSource,
        reports: ReportSink,
        loaded_sink: LoadedModelsSink,
        workers: KeyedWorkers,
        unavailable_reason: str = "",
    ) -> None:
        self._repo = repo
        self._layout = layout
        self._server = model_server
        self._storage = storage
        self._reports = reports
        self._loaded_sink = loaded_sink
        self._workers = workers
        self._unavailable = unavailable_reason
        self._loaded: set[str] = set()
        self._accepting = True
        # Draining: no new loads; unloads (the scheduler moving models away) still run.
        self._draining = False
        self._changed = asyncio.Event()

    @property
    def loaded_models(self) -> list[str]:
        return sorted(self._loaded)

    async def sync_loaded(self) -> list[str]:
        """Learn what the model server already holds (READY in its repository index)."""
        if self._unavailable:
            self._loaded = set()
        else:
            self._loaded = {entry.name for entry in await self._server.index() if entry.state == READY}
        return self.loaded_models

    def stop_accepting(self) -> None:
        self._accepting = False

    def start_draining(self) -> None:
        """Take no new models; keep serving and unloading the ones here."""
        self._draining = True

    async def wait_loaded_changed(self) -> None:
        """Return after the next change of the loaded models."""
        self._changed.clear()
        await self._changed.wait()

    def _loaded_changed(self) -> None:
        self._changed.set()

    def submit_load(self, request: LoadRequest) -> Decision:
        rejected = self._reject(request.model)
        if rejected is None and self._unavailable:
            rejected = Decision(False, self._unavailable)
        if rejected is None and self._draining:
            rejected = Decision(False, "the replica is draining")
        if rejected is not None:
            return rejected
        self._workers.submit(request.model, lambda: self._load(request))
        return Decision(True)

    def submit_unload(self, request: UnloadRequest) -> Decision:
        rejected = self._reject(request.model)
        if rejected is not None:
            return rejected
        self._workers.submit(request.model, lambda: self._unload(request))
        return Decision(True)

    def _reject(self, model: str) -> Decision | None:
        if not self._accepting:
            return Decision(False, "the replica is shutting down")
        if not model:
            return Decision(False, "the command names no model")
        return None

    async def _load(self, request: LoadRequest) -> None:
        name = request.server_name
        log.info("model_loading", model=request.model, version=request.version, server_model=name)
        await self._report(request.model, request.version, Outcome.LOADING)
        folder = self._repo / name
        try:
            spec = request.spec
            artifact = await self._storage.fetch(
                spec.storage_uri,
                spec.artifact_version,
                spec.secret_name,
                model=request.model,
                version=request.version,
            )
            artifact_name = await asyncio.to_thread(_copy_artifact, artifact, folder)
            self._layout.prepare(folder, name, spec, artifact_name)
            await self._server.load(name)
        except ModelplaneError as exc:
            await asyncio.to_thread(shutil.rmtree, folder, True)
            log.warning("model_load_failed", model=request.model, version=request.version, error=str(exc))
            await self._report(request.model, request.version, Outcome.LOAD_FAILED, str(exc))
            return
        except OSError as exc:  # copying or writing the folder
            await asyncio.to_thread(shutil.rmtree, folder, True)
            message = f"cannot prepare the model folder: {exc}"
            log.warning("model_load_failed", model=request.model, version=request.version, error=message)
            await self._report(request.model, request.version, Outcome.LOAD_FAILED, message)
            return
        self._loaded.add(name)
        self._loaded_changed()
        await self._loaded_sink.loaded_models_changed(lambda: self.loaded_models)
        log.info("model_loaded", model=request.model, version=request.version)
        await self._report(request.model, request.version, Outcome.LOADED)

    async def _unload(self, request: UnloadRequest) -> None:
        name = request.server_name
        try:
            if not self._unavailable:
                await self._server.unload(name)
        except ModelplaneError as exc:
            log.warning("model_unload_failed", model=request.model, version=request.version, error=str(exc))
            await self._report(request.model, request.version, Outcome.UNLOAD_FAILED, str(exc))
            return
        await asyncio.to_thread(shutil.rmtree, self._repo / name, True)
        if name in self._loaded:
            self._loaded.discard(name)
            self._loaded_changed()
            await self._loaded_sink.loaded_models_changed(lambda: self.loaded_models)
        log.info("model_unloaded", model=request.model, version=request.version)
        await self._report(request.model, request.version, Outcome.UNLOADED)

    async def _report(self, model: str, version: int, outcome: Outcome, message: str = "") -> None:
        await self._reports.report(Report(model=model, version=version, outcome=outcome, message=message))


def _copy_artifact(artifact: Path, folder: Path) -> str:
    """Copy a folder's content (or one file) into ``folder``; return the file name, "" for a folder."""
    if folder.exists():
        shutil.rmtree(folder)
    if artifact.is_dir():
        shutil.copytree(artifact, folder, symlinks=False)
        return ""
    folder.mkdir(parents=True)
    shutil.copy2(artifact, folder / artifact.name)
    return artifact.name
