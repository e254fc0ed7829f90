"""The control API's logic, independent of gRPC and REST.

Design: desired state lives in one KV bucket per kind (key = resource name, value = protobuf via
``libs.resources.convert``). ``apply`` versions a resource the Kubernetes way: a new resource gets
generation 1, a change of spec/labels/annotations bumps the generation, an identical apply
writes nothing. Writes carry the revision that was read (create / update-with-revision); when a
concurrent writer wins, the handler re-reads and decides again, a few times, before it reports
the conflict. After every change a thin event (names, not state) is published so that the
scheduler and the status service re-read KV.

Every typed resource, however it arrives, is validated by the same code that validates user
manifests (``parse_manifest``): a typed resource is rendered to its native manifest and parsed
back, so names, replica bounds and required fields are checked in exactly one place.

Experiments are desired state like the rest (KV_EXPERIMENTS, read by the gateways); the rule
that spans resources (a model is the baseline, ``default``, of at most one experiment) is checked
here against the stored experiments before writing. Nothing derives an experiment's status in
the background: ``get_status`` computes it on read from its members' model statuses
(ExperimentReady once every candidate and the mirror is ModelAvailable).

Pipelines and InferenceGraphs are stored the same way (KV_PIPELINES, KV_INFERENCE_GRAPHS, read by
the dataflow workers and the gateways); their status is computed on read too, from two
conditions: ModelsReady (every model the resource calls is ModelAvailable) and PipelineReady
(a dataflow worker reported in KV_DATAFLOW that it runs the resource's current generation). Both
kinds use Seldon's Pipeline state names (KServe defines none for a graph). Those statuses are
never written to KV_STATUS, so ``watch_status`` reports none for these kinds: clients poll
``get_status``.

Observed state (statuses, replicas) has no domain type in libs; it is read-only here and is
returned as the ``state_pb2`` messages the status service and the agents write.

``follow_model`` merges two live sources for one model into one stream for a client waiting on
a load: its status (a KV watch, pumped by one owned task) and the storage service's download
reports (a ``ProgressFeed``, a NATS subscription in production) that arrive more often than the
status service writes them. Both go through one queue; the stream ends when the client leaves.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Literal, Protocol

import structlog
from google.protobuf.message import Message
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.errors import ConflictError, InvalidError, NotFoundError, RetryableError
from modelplane.libs.resources import convert
from modelplane.libs.resources.manifests import parse_manifest, to_manifest
from modelplane.libs.resources.types import (
    KINDS,
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
from modelplane.proto import events_pb2, resources_pb2, state_pb2
from modelplane.services.api.inspect import Inspection, PipelineInspector
from modelplane.services.api.storage_policy import StoragePolicy

log = structlog.get_logger(__name__)

Outcome = Literal["created", "configured", "unchanged"]
WatchType = Literal["PUT", "DELETE"]
# One step of ``follow_model``: a status, a download report, or MODEL_DELETED.
FollowItem = state_pb2.ResourceStatus | state_pb2.DownloadStatus | None
MODEL_DELETED: Final = None

EVENT_SOURCE: Final = "api"
EVENT_SCHEMA_VERSION: Final = 1
# How many times apply re-reads and retries after losing a revision race.
APPLY_ATTEMPTS: Final = 5
WAITING_REASON: Final = "waiting for status"
# State reported for a resource that exists but whose status was not derived yet.
# Request ids are subject tokens of the dataflow stream (hex from the gateway; callers publishing
# requests themselves may choose their own).
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9_-]+")

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
_BUCKETS: Final[Mapping[str, str]] = {
    "Model": subjects.KV_MODELS,
    "Server": subjects.KV_SERVERS,
    "ServerConfig": subjects.KV_SERVER_CONFIGS,
    "Experiment": subjects.KV_EXPERIMENTS,
    "Pipeline": subjects.KV_PIPELINES,
    "InferenceGraph": subjects.KV_INFERENCE_GRAPHS,
}
# Short spellings beyond "<kind>" and "<kind>s" (any case).
_EXTRA_ALIASES: Final[Mapping[Kind, tuple[str, ...]]] = {
    "ServerConfig": ("server-config",),
    "InferenceGraph": ("inference-graph", "ig", "igs", "graph", "graphs"),
}
# Spellings accepted for a kind: "Model", "model", "models", "serverconfigs", "ig", ...
_KIND_ALIASES: Final[Mapping[str, Kind]] = {
    alias: kind
    for kind in KINDS
    for alias in (kind.lower(), kind.lower() + "s", *_EXTRA_ALIASES.get(kind, ()))
}


def parse_kind(value: str) -> Kind:
    """The canonical kind for a user's spelling; InvalidError naming the field ``kind`` otherwise."""
    kind = _KIND_ALIASES.get(value.strip().lower())
    if kind is None:
        raise InvalidError(f"unknown kind {value!r}; supported: {', '.join(KINDS)}", field="kind")
    return kind


class Publisher(Protocol):
    """What the handler needs from a NATS client (nats.aio.client.Client satisfies it)."""

    async def publish(self, subject: str, payload: bytes = b"") -> None: ...


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


@dataclasses.dataclass(frozen=True, slots=True)
class _Codec:
    """How one kind is stored: its protobuf message type and the to/from converters."""

    message: type[Message]
    to_pb: Callable[[Any], Message]
    from_pb: Callable[[Any], Resource]


_CODECS: Final[Mapping[str, _Codec]] = {
    "Model": _Codec(resources_pb2.Model, convert.model_to_pb, convert.model_from_pb),
    "Server": _Codec(resources_pb2.Server, convert.server_to_pb, convert.server_from_pb),
    "ServerConfig": _Codec(
        resources_pb2.ServerConfig, convert.server_config_to_pb, convert.server_config_from_pb
    ),
    "Experiment": _Codec(resources_pb2.Experiment, convert.experiment_to_pb, convert.experiment_from_pb),
    "Pipeline": _Codec(resources_pb2.Pipeline, convert.pipeline_to_pb, convert.pipeline_from_pb),
    "InferenceGraph": _Codec(resources_pb2.InferenceGraph, convert.graph_to_pb, convert.graph_from_pb),
}


def _normalized(resource: Resource) -> Resource:
    """The resource as it reads back from KV (proto defaults applied), for change detection."""
    codec = _CODECS[resource.kind]
    return codec.from_pb(codec.to_pb(resource))


def _same_content(a: Resource, b: Resource) -> bool:
    return a.spec == b.spec and a.meta.labels == b.meta.labels and a.meta.annotations == b.meta.annotations


def validate(resource: Resource) -> Resource:
    """Check a typed resource with the manifest rules (InvalidError naming the field)."""
    parsed = parse_manifest(to_manifest(resource))
    return dataclasses.replace(
        parsed, meta=dataclasses.replace(parsed.meta, imported_from=resource.meta.imported_from)
    )


class ControlHandler:
    """Apply/get/list/delete desired state; read and watch observed state."""

    def __init__(
        self,
        resources: Mapping[Kind, TypedBucket[Any]],
        statuses: TypedBucket[state_pb2.ResourceStatus],
        replicas: TypedBucket[state_pb2.ReplicaInfo],
        publisher: Publisher,
        progress: ProgressFeed | None = None,
        dataflow: TypedBucket[state_pb2.DataflowState] | None = None,
        inspector: PipelineInspector | None = None,
        storage_policy: StoragePolicy | None = None,
    ) -> None:
        self._resources = resources
        # Where a Model's storageUri may point (None: not checked; the app always passes one).
        self._storage_policy = storage_policy
        # Reads step records from the dataflow stream (None: inspect is unavailable).
        self._inspector = inspector
        # What the dataflow workers run (None: no dataflow, pipelines stay PipelineCreating).
        self._dataflow = dataflow
        self._statuses = statuses
        self._replicas = replicas
        self._publisher = publisher
        self._progress: ProgressFeed = progress if progress is not None else NoProgress()
        # One status pump per open follow_model stream.
        self._tasks = TaskSupervisor("api-follow")
        self._follows = 0
        # Open watch streams; close() waits for them so their NATS subscriptions end before the
        # connection does (nats-py leaves a consumer's tasks running when unsubscribe fails).
        self._watches = 0
        self._no_watches = asyncio.Event()
        self._no_watches.set()

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        publisher: Publisher,
        progress: ProgressFeed | None = None,
        storage_policy: StoragePolicy | None = None,
    ) -> ControlHandler:
        """Open the buckets the handler uses (they must exist: see ``store.ensure_buckets``)."""
        resources: dict[Kind, TypedBucket[Any]] = {
            kind: await TypedBucket.open(js, _BUCKETS[kind], _CODECS[kind].message) for kind in KINDS
        }
        statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
        replicas = await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
        dataflow = await TypedBucket.open(js, subjects.KV_DATAFLOW, state_pb2.DataflowState)
        inspector = PipelineInspector(js)
        return cls(resources, statuses, replicas, publisher, progress, dataflow, inspector, storage_policy)

    # ---- desired state ------------------------------------------------------------------------

    async def apply_manifest(self, doc: Any) -> tuple[Resource, Outcome]:
        """Validate a manifest (native or imported) and apply the resource it describes."""
        return await self._apply_valid(parse_manifest(doc))

    async def apply(self, resource: Resource) -> tuple[Resource, Outcome]:
        """Store ``resource``, versioning it; returns the stored resource and what happened."""
        return await self._apply_valid(validate(resource))

    async def _apply_valid(self, resource: Resource) -> tuple[Resource, Outcome]:
        incoming = _normalized(resource)
        if self._storage_policy is not None:
            await self._storage_policy.check(incoming)
        if isinstance(incoming, Experiment):
            await self._check_baseline(incoming)
        return await self._write(incoming.kind, incoming.meta.name, lambda _existing: incoming)

    async def scale(self, kind: Kind, name: str, replicas: int, reason: str = "") -> tuple[Resource, Outcome]:
        """Set only the replicas of a Model or Server (``kubectl scale``; what the autoscaler
        uses): read, change and write under the stored revision, so a concurrent edit of any other
        field is never overwritten with a stale copy."""
        if kind not in ("Model", "Server"):
            raise InvalidError(f"only Models and Servers have replicas, not {kind}s", field="kind")
        if replicas < 0:
            raise InvalidError(f"must be >= 0, got {replicas}", field="replicas")

        def scaled(existing: Resource | None) -> Resource:
            if existing is None:
                raise NotFoundError(f"{kind} {name!r} not found")
            if isinstance(existing, Model):
                return validate(
                    dataclasses.replace(existing, spec=dataclasses.replace(existing.spec, replicas=replicas))
                )
            assert isinstance(existing, Server)
            return validate(
                dataclasses.replace(existing, spec=dataclasses.replace(existing.spec, replicas=replicas))
            )

        return await self._write(kind, name, scaled, {"replicas": str(replicas), "reason": reason})

    async def _write(
        self,
        kind: Kind,
        name: str,
        change: Callable[[Resource | None], Resource],
        attributes: Mapping[str, str] | None = None,
    ) -> tuple[Resource, Outcome]:
        """Store ``change(stored or None)``, versioning it, under the stored revision (retried
        when another writer got there first)."""
        bucket = self._resources[kind]
        codec = _CODECS[kind]
        for _ in range(APPLY_ATTEMPTS):
            current = await bucket.try_get(name)
            existing = codec.from_pb(current.value) if current is not None else None
            incoming = change(existing)
            try:
                if current is None or existing is None:
                    stored = _with_meta(incoming, generation=1, created_at=now_rfc3339())
                    await bucket.create(name, codec.to_pb(stored))
                    outcome: Outcome = "created"
                else:
                    if _same_content(existing, incoming):
                        return existing, "unchanged"
                    stored = _with_meta(
                        incoming,
                        generation=existing.meta.generation + 1,
                        created_at=existing.meta.created_at,
                    )
                    await bucket.update(name, codec.to_pb(stored), current.revision)
                    outcome = "configured"
            except ConflictError:
                log.info("apply_conflict_retry", kind=kind, name=name)
                continue
            log.info(
                "resource_applied",
                kind=stored.kind,
                name=name,
                outcome=outcome,
                generation=stored.meta.generation,
                **(attributes or {}),
            )
            await self._publish(
                "applied",
                stored.kind,
                name,
                {"generation": str(stored.meta.generation), **(attributes or {})},
            )
            return stored, outcome
        raise ConflictError(
            f"{kind} {name} kept changing concurrently; gave up after {APPLY_ATTEMPTS} attempts"
        )

    async def _check_baseline(self, experiment: Experiment) -> None:
        """InvalidError when another experiment already has the same ``default`` (Seldon's rule:
        a resource is the baseline of at most one experiment)."""
        default = experiment.spec.default
        if not default:
            return
        for other in await self.list("Experiment"):
            if (
                isinstance(other, Experiment)
                and other.meta.name != experiment.meta.name
                and other.spec.default == default
            ):
                raise InvalidError(
                    f"{default} is already the baseline of experiment {other.meta.name}; "
                    "a resource is the baseline of at most one experiment",
                    field="spec.default",
                )

    async def get(self, kind: Kind, name: str) -> Resource:
        found = await self._resources[kind].try_get(name)
        if found is None:
            raise NotFoundError(f"{kind} {name!r} not found")
        return _CODECS[kind].from_pb(found.value)

    async def list(self, kind: Kind) -> builtins.list[Resource]:
        codec = _CODECS[kind]
        items = await self._resources[kind].items()
        return sorted((codec.from_pb(item.value) for item in items), key=lambda r: r.meta.name)

    async def delete(self, kind: Kind, name: str) -> str:
        """Remove a resource; the scheduler unloads what it placed. Returns the outcome ``deleted``."""
        bucket = self._resources[kind]
        found = await bucket.try_get(name)
        if found is None:
            raise NotFoundError(f"{kind} {name!r} not found")
        await bucket.delete(name)
        log.info("resource_deleted", kind=kind, name=name)
        await self._publish("deleted", kind, name, {})
        return "deleted"

    async def _publish(self, type_: str, kind: str, name: str, attributes: Mapping[str, str]) -> None:
        event = events_pb2.Event(
            id=uuid.uuid4().hex,
            source=EVENT_SOURCE,
            type=type_,
            schema_version=EVENT_SCHEMA_VERSION,
            kind=kind,
            name=name,
            time=now_rfc3339(),
            attributes=dict(attributes),
        )
        await self._publisher.publish(subjects.resource_event(kind, name), event.SerializeToString())

    # ---- observed state -----------------------------------------------------------------------

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
                return _terminating_status(record)
            resource = _CODECS[kind].from_pb(found_resource.value)
            assert isinstance(resource, Pipeline | InferenceGraph)
            return await self._dataflow_status(resource)
        found = await self._statuses.try_get(subjects.status_key(kind, name))
        if found is not None:
            return found.value
        resource = await self.get(kind, name)  # NotFoundError when neither exists
        return _initial_status(resource)

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
            out.append(status if status is not None else _initial_status(resource))
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
                    out.append(_terminating_status(record))
        return sorted(out, key=lambda s: s.name)

    async def inspect_pipeline(self, name: str, step: str = "", request_id: str = "") -> Inspection:
        """The last messages of a pipeline's request and steps (the latest request by default)."""
        pipeline = await self.get("Pipeline", name)
        assert isinstance(pipeline, Pipeline)
        steps = [s.name for s in pipeline.spec.steps]
        if step and step not in steps:
            raise InvalidError(
                f"pipeline {name} has no step {step!r} (steps: {', '.join(steps)})", field="step"
            )
        if request_id and not _REQUEST_ID.fullmatch(request_id):
            raise InvalidError(
                f"{request_id!r} is not a request id (letters, digits, '-' and '_')", field="request_id"
            )
        if self._inspector is None:
            raise RetryableError(
                "inspecting pipelines needs the dataflow stream, which this api does not read"
            )
        return await self._inspector.inspect(pipeline, step, request_id)

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


def _with_meta(resource: Resource, *, generation: int, created_at: str) -> Resource:
    meta = dataclasses.replace(resource.meta, generation=generation, created_at=created_at)
    return dataclasses.replace(resource, meta=meta)


def _terminating_status(record: state_pb2.DataflowState) -> state_pb2.ResourceStatus:
    """A deleted pipeline or graph whose dataflow record is still there: workers are stopping it."""
    return state_pb2.ResourceStatus(
        kind=record.kind,
        name=record.name,
        state=PIPELINE_TERMINATING,
        reason="deleted; waiting for the dataflow workers to stop it",
        observed_generation=record.generation,
        last_change=record.updated_at,
    )


def _initial_status(resource: Resource) -> state_pb2.ResourceStatus:
    total = resource.spec.replicas if isinstance(resource, Model | Server) else 0
    return state_pb2.ResourceStatus(
        kind=resource.kind,
        name=resource.meta.name,
        state=_INITIAL_STATE[resource.kind],
        reason=WAITING_REASON,
        total_replicas=total,
        generation=resource.meta.generation,
    )
