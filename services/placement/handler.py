"""The placement agent's logic: accept load/unload commands, do them in order per model, report.

Design: a command is answered at once (accepted, or rejected with a reason) and its work queued on
``KeyedWorkers`` keyed by model name, so one model's load and unload never overtake each other
while different models load in parallel. Each step's outcome goes out as a ``Report``; the set of
models the server holds is published to the replica registration after every change. Transport
types stay out: the NATS adapter converts commands and reports.

Memory (Seldon's overcommit, without its wipe): the scheduler may assign models up to memory x
(1 + overcommit%). The agent keeps two sets: *registered* models (loaded as far as the scheduler
and the gateway know: what the registration advertises) and *resident* ones (in the server's
memory now). Before a model is made resident, the least recently used resident models are
unloaded from the server until it fits in the replica's real memory; they stay registered, their
folders stay in the repository, and ``ensure`` (the gateway asks when the server answered "no
such model") makes one resident again the same way. Use comes from the gateway's usage reports
(``touch``), loads and ``ensure``. Residency changes (server load/unload calls) are serialised by
one lock, with the bytes of a load in flight reserved, so two loads never count the same memory.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

import structlog

from modelplane.libs.errors import ModelplaneError
from modelplane.libs.local_paths import copy_confined, ensure_unchanged
from modelplane.libs.tasks import KeyedWorkers
from modelplane.services.placement.model_server import RepositoryEntry
from modelplane.services.placement.runtimes import ModelLayout
from modelplane.services.placement.types import (
    Decision,
    LoadRequest,
    Outcome,
    Report,
    UnloadRequest,
    server_model_name,
)

log = structlog.get_logger(__name__)

READY = "READY"
# Beside each model's files in its folder: what the agent knows of it that the server does not
# (its memory), so an agent that adopts a running server can count what is resident.
MARKER_FILE = ".modelplane-model.json"


class ArtifactSource(Protocol):
    def lease(
        self, uri: str, artifact_version: str, secret_name: str, *, model: str = "", version: int = 0
    ) -> AbstractAsyncContextManager[Path]:
        """The artifact's local path, kept from cache eviction until the block ends."""


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
        memory_bytes: int = 0,
        server_parallel_workers: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._repo = repo
        self._layout = layout
        self._server = model_server
        self._storage = storage
        self._reports = reports
        self._loaded_sink = loaded_sink
        self._workers = workers
        self._unavailable = unavailable_reason
        # Registered: loaded as far as the scheduler knows (what the registration advertises).
        self._loaded: set[str] = set()
        # Resident: in the server's memory now (or loading), name -> bytes; a subset of registered
        # plus loads in flight. 0 memory_bytes = the replica's memory is not limited here.
        self._resident: dict[str, int] = {}
        self._in_flight: set[str] = set()
        self._last_used: dict[str, float] = {}
        self._memory_bytes = memory_bytes
        self._server_workers = server_parallel_workers
        self._clock = clock
        self._residency = asyncio.Lock()
        self._accepting = True
        # Draining: no new loads; unloads (the scheduler moving models away) still run.
        self._draining = False
        self._changed = asyncio.Event()

    @property
    def loaded_models(self) -> list[str]:
        """Registered models (resident or evicted), as the registration advertises them."""
        return sorted(self._loaded)

    @property
    def resident_models(self) -> list[str]:
        """Models in the server's memory now."""
        return sorted(n for n in self._resident if n not in self._in_flight)

    @property
    def eviction_order(self) -> list[str]:
        """Resident models, the one evicted first (least recently used) first."""
        return sorted(self.resident_models, key=lambda n: (self._last_used.get(n, 0.0), n))

    async def sync_loaded(self) -> list[str]:
        """Learn what the model server already holds (READY in its repository index).

        Only those are registered: a model evicted before an agent restart is reloaded by the
        scheduler (it sees the replica restarted without it), so no state is kept outside the
        server but each model's memory, in its folder's marker file.
        """
        if self._unavailable:
            self._loaded = set()
        else:
            self._loaded = {entry.name for entry in await self._server.index() if entry.state == READY}
        now = self._clock()
        self._resident = {name: _marked_bytes(self._repo / name) for name in self._loaded}
        self._last_used = dict.fromkeys(self._loaded, now)
        return self.loaded_models

    def touch(self, names: Iterable[str]) -> None:
        """These models served requests just now (the gateway's usage report)."""
        now = self._clock()
        for name in names:
            if name in self._loaded:
                self._last_used[name] = now

    async def ensure(self, model: str, version: int) -> Decision:
        """Make a registered model version resident again (after an eviction); answer when it is.

        Runs on the model's worker, so it never overtakes a load or unload of the same model.
        """
        name = server_model_name(model, version)
        if self._unavailable:
            return Decision(False, self._unavailable)
        if name not in self._loaded:
            return Decision(False, f"model {name} is not loaded on this replica")
        if name in self._resident and name not in self._in_flight:
            self._last_used[name] = self._clock()
            return Decision(True)
        done: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()

        async def work() -> None:
            try:
                decision = await self._ensure(name)
            except BaseException as exc:
                if not done.done():
                    done.set_exception(exc)
                raise
            if not done.done():
                done.set_result(decision)

        self._workers.submit(model, work)
        return await done

    async def _ensure(self, name: str) -> Decision:
        if name not in self._loaded:  # unloaded while this waited for its turn
            return Decision(False, f"model {name} is not loaded on this replica")
        try:
            await self._make_resident(name, _marked_bytes(self._repo / name))
        except ModelplaneError as exc:
            log.warning("model_reload_failed", server_model=name, error=str(exc))
            return Decision(False, f"reloading {name} failed: {exc}")
        log.info("model_reloaded", server_model=name)
        return Decision(True)

    async def _make_resident(self, name: str, size: int) -> None:
        """Load ``name`` on the server, first unloading least recently used models to fit it."""
        async with self._residency:
            if name in self._resident:
                self._last_used[name] = self._clock()
                return
            for victim in self._victims(size):
                # Stays registered (and in the repository): a request for it reloads it.
                await self._server.unload(victim)
                del self._resident[victim]
                log.info("model_evicted", server_model=victim, to_fit=name, bytes=size)
            self._resident[name] = size
            self._in_flight.add(name)
        try:
            await self._server.load(name)
        except BaseException:
            self._resident.pop(name, None)
            raise
        finally:
            self._in_flight.discard(name)
        self._last_used[name] = self._clock()

    def _victims(self, size: int) -> list[str]:
        """Resident models to unload, least recently used first, so ``size`` more bytes fit."""
        if self._memory_bytes <= 0 or size <= 0:
            return []
        excess = sum(self._resident.values()) + size - self._memory_bytes
        if excess <= 0:
            return []
        victims: list[str] = []
        for name in self.eviction_order:
            if excess <= 0:
                break
            if self._resident[name] <= 0:
                continue  # frees nothing
            victims.append(name)
            excess -= self._resident[name]
        # A model larger than what eviction can free still loads (the scheduler allowed it within
        # the overcommit); everything evictable goes first.
        return victims

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
            lease = self._storage.lease(
                spec.storage_uri,
                spec.artifact_version,
                spec.secret_name,
                model=request.model,
                version=request.version,
            )
            # The cache may evict the artifact once released: only after it is copied.
            async with lease as artifact:
                artifact_name = await asyncio.to_thread(_copy_artifact, artifact, folder)
            size = spec.required_bytes(self._server_workers)
            self._layout.prepare(folder, name, spec, artifact_name)
            (folder / MARKER_FILE).write_text(json.dumps({"memory_bytes": size}))
            await self._make_resident(name, size)
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
                async with self._residency:
                    if name in self._resident or name not in self._loaded:
                        # Not resident = evicted: the server no longer holds it. A model this
                        # agent does not know is unloaded anyway (the server may hold it).
                        await self._server.unload(name)
                    self._resident.pop(name, None)
        except ModelplaneError as exc:
            log.warning("model_unload_failed", model=request.model, version=request.version, error=str(exc))
            await self._report(request.model, request.version, Outcome.UNLOAD_FAILED, str(exc))
            return
        await asyncio.to_thread(shutil.rmtree, self._repo / name, True)
        self._last_used.pop(name, None)
        if name in self._loaded:
            self._loaded.discard(name)
            self._loaded_changed()
            await self._loaded_sink.loaded_models_changed(lambda: self.loaded_models)
        log.info("model_unloaded", model=request.model, version=request.version)
        await self._report(request.model, request.version, Outcome.UNLOADED)

    async def _report(self, model: str, version: int, outcome: Outcome, message: str = "") -> None:
        await self._reports.report(Report(model=model, version=version, outcome=outcome, message=message))


def _marked_bytes(folder: Path) -> int:
    """The memory recorded in a model folder's marker (0 when unknown)."""
    try:
        return int(json.loads((folder / MARKER_FILE).read_text()).get("memory_bytes", 0))
    except (OSError, ValueError, AttributeError):
        return 0


def _copy_artifact(artifact: Path, folder: Path) -> str:
    """Copy a folder's content (or one file) into ``folder``; return the file name, "" for a folder."""
    if folder.exists():
        shutil.rmtree(folder)
    ensure_unchanged(artifact)
    if artifact.is_dir():
        # Symlinks are followed only inside the artifact: one leading out (to /etc/passwd, or a
        # folder elsewhere) fails the load instead of copying host files where model code reads.
        copy_confined(artifact, folder)
        return ""
    folder.mkdir(parents=True)
    shutil.copy2(artifact, folder / artifact.name)
    return artifact.name
