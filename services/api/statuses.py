"""Observed state as the api reports it: statuses (stored, or derived on read), replicas, and
the live streams ``watch_status`` and ``follow_model``.

Design: observed state (statuses, replicas) has no domain type in libs; it is read-only here and
is returned as the ``state_pb2`` messages the status service and the agents write.

Experiments, Pipelines and InferenceGraphs get their status computed on read. An experiment is
ExperimentReady once every candidate and the mirror is ModelAvailable. A pipeline or graph has
two conditions: ModelsReady (every model the resource calls is ModelAvailable) and PipelineReady
(a dataflow worker reported in KV_DATAFLOW that it runs the resource's current generation). Both
kinds use Seldon's Pipeline state names (KServe defines none for a graph). Those statuses are
never written to KV_STATUS, so ``watch_status`` reports none for these kinds: clients poll
``get_status``.

``follow_model`` merges two live sources for one model into one stream for a client waiting on
a load: its status (a KV watch, pumped by one owned task) and the storage service's download
reports (a ``ProgressFeed``, a NATS subscription in production) that arrive more often than the
status service writes them. Both go through one queue; the stream ends when the client leaves.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Literal, Protocol

import structlog

from modelplane.libs import subjects
from modelplane.libs.errors import NotFoundError
from modelplane.libs.resources.types import (
    Experiment,
    InferenceGraph,
    Kind,
    Model,
    Pipeline,
    Resource,
    Server,
)
from modelplane.libs.store import TypedBucket
from modelplane.libs.tasks import TaskSupervisor, cancel_and_wait
from modelplane.proto import state_pb2
from modelplane.services.api.kinds import CODECS, read_all, read_resource

log = structlog.get_logger(__name__)

WatchType = Literal["PUT", "DELETE"]
# One step of ``follow_model``: a status, a download report, or MODEL_DELETED.
FollowItem = state_pb2.ResourceStatus | state_pb2.DownloadStatus | None
MODEL_DELETED: Final = None
WAITING_REASON: Final = "waiting for status"
# State reported for a resource that exists but whose status was not derived yet.
_INITIAL_STATE: Final[Mapping[str, str]] = {
    "Model": "ModelStateUnknown",
    "Server": "ServerNotReady",
    "ServerConfig": "Unknown",
    "Experiment": "ExperimentNotReady",
    "Pipeline": "PipelineCreating",
    "InferenceGraph": "PipelineCreating",
}
# Seldon's pipeline states; InferenceGraphs use them too. PipelineCreate and PipelineTerminate
# (requests not yet acted on) never show here: apply and delete act at once.
PIPELINE_CREATING: Final = "PipelineCreating"
PIPELINE_READY: Final = "PipelineReady"
PIPELINE_FAILED: Final = "PipelineFailed"
PIPELINE_TERMINATING: Final = "PipelineTerminating"
# Conditions of a pipeline's or graph's status, and the DataflowState states the workers write.
CONDITION_PIPELINE_READY: Final = "PipelineReady"
CONDITION_MODELS_READY: Final = "ModelsReady"
DATAFLOW_READY: Final = "Ready"
DATAFLOW_FAILED: Final = "Failed"
WAITING_FOR_DATAFLOW: Final = "waiting for a dataflow worker"
DATAFLOW_KINDS: Final[tuple[Kind, ...]] = ("Pipeline", "InferenceGraph")
EXPERIMENT_READY: Final = "ExperimentReady"
EXPERIMENT_NOT_READY: Final = "ExperimentNotReady"
MODEL_AVAILABLE: Final = "ModelAvailable"


class ProgressFeed(Protocol):
    """Live download reports of the storage service (api.nats_progress in production)."""

    def follow(self, model: str) -> AbstractAsyncContextManager[AsyncIterator[state_pb2.DownloadStatus]]:
        """The reports about ``model`` sent while the block runs (listening when it starts)."""
        ...


class NoProgress:
    """A ``ProgressFeed`` that never reports (for a handler without NATS progress)."""

    @contextlib.asynccontextmanager
    async def follow(self, model: str) -> AsyncIterator[AsyncIterator[state_pb2.DownloadStatus]]:
        yield _no_reports()


async def _no_reports() -> AsyncIterator[state_pb2.DownloadStatus]:
    await asyncio.Event().wait()  # never set: nothing to report until the follow ends
    yield state_pb2.DownloadStatus()  # pragma: no cover


class StatusReader:
    """Reads and follows observed state; resources come from the desired-state buckets."""

    def __init__(
        self,
        resources: Mapping[Kind, TypedBucket[Any]],
        statuses: TypedBucket[state_pb2.ResourceStatus],
        replicas: TypedBucket[state_pb2.ReplicaInfo],
        progress: ProgressFeed | None = None,
        dataflow: TypedBucket[state_pb2.DataflowState] | None = None,
    ) -> None:
        self._resources = resources
        # What the dataflow workers run (None: no dataflow, pipelines stay PipelineCreating).
        self._dataflow = dataflow
        self._statuses = statuses
        self._replicas = replicas
        self._progress: ProgressFeed = progress if progress is not None else NoProgress()
        # One status pump per open follow_model stream.
        self._tasks = TaskSupervisor("api-follow")
        self._follows = 0
        # Open watch streams; close() waits for them so their NATS subscriptions end before the
        # connection does (nats-py leaves a consumer's tasks running when unsubscribe fails).
        self._watches = 0
        self._no_watches = asyncio.Event()
        self._no_watches.set()

    async def get(self, kind: Kind, name: str) -> Resource:
        return await read_resource(self._resources[kind], kind, name)

    async def list(self, kind: Kind) -> builtins.list[Resource]:
        return await read_all(self._resources[kind], kind)

    async def get_status(self, kind: Kind, name: str) -> state_pb2.ResourceStatus:
        """The derived status; a placeholder while the status service has not written one yet."""
        if kind == "Experiment":
            experiment = await self.get(kind, name)
            assert isinstance(experiment, Experiment)
            return await self._experiment_status(experiment)
        if kind in DATAFLOW_KINDS:
            found_resource = await self._resources[kind].try_get(name)
            if found_resource is None:
                record = await self._dataflow_record(kind, name)
                if record is None:
                    raise NotFoundError(f"{kind} {name!r} not found")
                return terminating_status(record)
            resource = CODECS[kind].from_pb(found_resource.value)
            assert isinstance(resource, Pipeline | InferenceGraph)
            return await self._dataflow_status(resource)
        found = await self._statuses.try_get(subjects.status_key(kind, name))
        if found is not None:
            return found.value
        resource = await self.get(kind, name)  # NotFoundError when neither exists
        return initial_status(resource)

    async def _experiment_status(self, experiment: Experiment) -> state_pb2.ResourceStatus:
        """ExperimentReady when every candidate and the mirror is ModelAvailable (PipelineReady
        for an experiment over pipelines); the reason names those that are not, with their state."""
        spec = experiment.spec
        status = state_pb2.ResourceStatus(
            kind=experiment.kind,
            name=experiment.meta.name,
            generation=experiment.meta.generation,
            observed_generation=experiment.meta.generation,
            total_replicas=len(spec.members()),
        )
        ready_state = PIPELINE_READY if spec.resource_type == "pipeline" else MODEL_AVAILABLE
        waiting: builtins.list[str] = []
        for member in spec.members():
            if spec.resource_type == "pipeline":
                state = await self._pipeline_state(member)
            else:
                state = await self._model_state(member)
            if state == ready_state:
                status.available_replicas += 1
            else:
                role = "mirror" if spec.mirror is not None and member == spec.mirror.name else "candidate"
                waiting.append(f"{role} {member} is {state}")
        status.state = EXPERIMENT_NOT_READY if waiting else EXPERIMENT_READY
        status.reason = "; ".join(waiting) if waiting else "candidates and mirror ready"
        return status

    async def _dataflow_record(self, kind: str, name: str) -> state_pb2.DataflowState | None:
        if self._dataflow is None:
            return None
        found = await self._dataflow.try_get(subjects.status_key(kind, name))
        return found.value if found is not None else None

    async def _dataflow_status(self, resource: Pipeline | InferenceGraph) -> state_pb2.ResourceStatus:
        """PipelineReady once a dataflow worker runs this generation and every model it calls is
        ModelAvailable; PipelineFailed when the workers cannot run it; PipelineCreating otherwise
        (also when a model stops being available after it was ready)."""
        models = resource.spec.models()
        generation = resource.meta.generation
        status = state_pb2.ResourceStatus(
            kind=resource.kind,
            name=resource.meta.name,
            generation=generation,
            total_replicas=len(models),
        )
        waiting: builtins.list[str] = []
        for model in models:
            state = await self._model_state(model)
            if state == MODEL_AVAILABLE:
                status.available_replicas += 1
            else:
                waiting.append(f"model {model} is {state}")
        models_ready = state_pb2.Condition(
            type=CONDITION_MODELS_READY,
            status=not waiting,
            reason="; ".join(waiting) if waiting else "every model is ModelAvailable",
        )
        record = await self._dataflow_record(resource.kind, resource.meta.name)
        pipeline_ready = state_pb2.Condition(type=CONDITION_PIPELINE_READY, reason=WAITING_FOR_DATAFLOW)
        if record is not None:
            status.observed_generation = record.generation
            status.last_change = record.updated_at
        if record is not None and record.generation == generation:
            pipeline_ready.last_change = record.updated_at
            pipeline_ready.status = record.state == DATAFLOW_READY
            pipeline_ready.reason = record.reason or (
                f"a dataflow worker runs generation {generation}"
                if pipeline_ready.status
                else f"the dataflow workers report {record.state or 'no state'}"
            )
        if record is not None and record.generation == generation and record.state == DATAFLOW_FAILED:
            status.state = PIPELINE_FAILED
            status.reason = pipeline_ready.reason
        elif pipeline_ready.status and models_ready.status:
            status.state = PIPELINE_READY
            status.reason = "dataflow running and every model available"
        else:
            status.state = PIPELINE_CREATING
            status.reason = "; ".join(c.reason for c in (pipeline_ready, models_ready) if not c.status)
        status.conditions.extend([pipeline_ready, models_ready])
        return status

    async def _pipeline_state(self, name: str) -> str:
        try:
            return (await self.get_status("Pipeline", name)).state
        except NotFoundError:
            return "not found (no such pipeline)"

    async def _model_state(self, name: str) -> str:
        found = await self._statuses.try_get(subjects.status_key("Model", name))
        if found is not None and found.value.state:
            return found.value.state
        if await self._resources["Model"].try_get(name) is None:
            return "not found (no such model)"
        return _INITIAL_STATE["Model"]

    async def list_status(self, kind: Kind) -> builtins.list[state_pb2.ResourceStatus]:
        """The status of every resource of ``kind`` (placeholders for those without one yet)."""
        if kind == "Experiment":
            experiments = [r for r in await self.list(kind) if isinstance(r, Experiment)]
            return [await self._experiment_status(e) for e in experiments]
        if kind in DATAFLOW_KINDS:
            return await self._dataflow_statuses(kind)
        written: dict[str, state_pb2.ResourceStatus] = {
            item.value.name or item.key.split(".", 1)[-1]: item.value
            for item in await self._statuses.items()
            if item.key.startswith(f"{kind}.")
        }
        out: builtins.list[state_pb2.ResourceStatus] = []
        for resource in await self.list(kind):
            status = written.pop(resource.meta.name, None)
            out.append(status if status is not None else initial_status(resource))
        # A status may outlive its resource for a moment (the resource was just deleted).
        out.extend(written.values())
        return sorted(out, key=lambda s: s.name)

    async def _dataflow_statuses(self, kind: Kind) -> builtins.list[state_pb2.ResourceStatus]:
        out: builtins.list[state_pb2.ResourceStatus] = []
        names: set[str] = set()
        for resource in await self.list(kind):
            assert isinstance(resource, Pipeline | InferenceGraph)
            names.add(resource.meta.name)
            out.append(await self._dataflow_status(resource))
        if self._dataflow is not None:
            # Deleted ones the workers still run are PipelineTerminating until they let go.
            for item in await self._dataflow.items():
                record = item.value
                if record.kind == kind and record.name not in names:
                    out.append(terminating_status(record))
        return sorted(out, key=lambda s: s.name)

    async def server_replicas(self, name: str) -> builtins.list[state_pb2.ReplicaInfo]:
        """Every registered replica of server ``name``, by index."""
        prefix = f"{name}."
        found = [item.value for item in await self._replicas.items() if item.key.startswith(prefix)]
        return sorted(found, key=lambda r: r.index)

    async def watch_status(
        self, kind: Kind, name: str = ""
    ) -> AsyncGenerator[tuple[WatchType, state_pb2.ResourceStatus], None]:
        """Current statuses, then every change; all resources of ``kind`` when ``name`` is empty."""
        keys = subjects.status_key(kind, name) if name else subjects.status_key(kind, ">")
        stream = self._statuses.watch(keys)
        self._watches += 1
        self._no_watches.clear()
        try:
            async for change in stream:
                if change is None:  # end of the replay of current values
                    continue
                if change.value is None:
                    _, _, key_name = change.key.partition(".")
                    yield "DELETE", state_pb2.ResourceStatus(kind=kind, name=key_name)
                else:
                    yield "PUT", change.value
        finally:
            try:
                await stream.aclose()
            finally:
                self._watches -= 1
                if self._watches == 0:
                    self._no_watches.set()

    @property
    def following(self) -> int:
        """How many follow_model streams are open (progress subscriptions included)."""
        return self._follows

    async def follow_model(self, name: str) -> AsyncGenerator[FollowItem, None]:
        """A model's current status, then its status changes and live download reports as they
        come (``MODEL_DELETED`` when it is deleted), until the caller stops iterating."""
        current = await self.get_status("Model", name)  # NotFoundError before anything is sent
        queue: asyncio.Queue[FollowItem | BaseException] = asyncio.Queue()
        # Listen to progress first: a report sent while the watch starts is not lost.
        async with self._progress.follow(name) as reports:
            pumps = (
                self._tasks.spawn(f"follow-status:{name}", self._pump(self._statuses_of(name), queue)),
                self._tasks.spawn(f"follow-progress:{name}", self._pump(reports, queue)),
            )
            self._follows += 1
            try:
                yield current
                while True:
                    item = await queue.get()
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                self._follows -= 1
                for pump in pumps:
                    await cancel_and_wait(pump)

    async def _statuses_of(self, name: str) -> AsyncIterator[FollowItem]:
        async for type_, status in self.watch_status("Model", name):
            yield MODEL_DELETED if type_ == "DELETE" else status

    async def _pump(
        self,
        source: AsyncIterator[FollowItem],
        queue: asyncio.Queue[FollowItem | BaseException],
    ) -> None:
        try:
            async for item in source:
                queue.put_nowait(item)
        except Exception as exc:  # hand it to the stream, which ends with it
            queue.put_nowait(exc)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the follow pumps, then wait (up to ``timeout`` seconds) until every watch stream
        has released its subscription."""
        await self._tasks.close(timeout)
        try:
            await asyncio.wait_for(self._no_watches.wait(), timeout)
        except TimeoutError:
            log.warning("watches_still_open", count=self._watches)


def terminating_status(record: state_pb2.DataflowState) -> state_pb2.ResourceStatus:
    """A deleted pipeline or graph whose dataflow record is still there: workers are stopping it."""
    return state_pb2.ResourceStatus(
        kind=record.kind,
        name=record.name,
        state=PIPELINE_TERMINATING,
        reason="deleted; waiting for the dataflow workers to stop it",
        observed_generation=record.generation,
        last_change=record.updated_at,
    )


def initial_status(resource: Resource) -> state_pb2.ResourceStatus:
    total = resource.spec.replicas if isinstance(resource, Model | Server) else 0
    return state_pb2.ResourceStatus(
        kind=resource.kind,
        name=resource.meta.name,
        state=_INITIAL_STATE[resource.kind],
        reason=WAITING_REASON,
        total_replicas=total,
        generation=resource.meta.generation,
    )
