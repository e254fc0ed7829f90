"""The pipelines and inference graphs this worker can run, kept in step with their KV buckets.

Design: one runner per resource, built when the resource appears or changes and closed when it
goes. Each change is reported in KV_DATAFLOW (``<kind>.<name>`` -> DataflowState: the
generation now running, or why it cannot run) so the api can say whether a pipeline is ready.
Every worker writes the same record for the same generation; the writes are idempotent.
Requests already running keep the runner they started with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from modelplane.libs.errors import ModelplaneError
from modelplane.libs.resources.types import InferenceGraph, Pipeline
from modelplane.libs.tasks import KeyedWorkers, TaskSupervisor
from modelplane.services.dataflow.chaining import ChainIndex
from modelplane.services.dataflow.engine import PipelineRunner
from modelplane.services.dataflow.graph.run import GraphRunner

log = structlog.get_logger(__name__)

READY = "Ready"
FAILED = "Failed"
PIPELINE = "pipeline"
GRAPH = "graph"
# subject token -> resource kind
KIND_OF_TOKEN = {PIPELINE: "Pipeline", GRAPH: "InferenceGraph"}


class StateSink(Protocol):
    async def put(self, kind: str, name: str, generation: int, state: str, reason: str) -> None: ...

    async def delete(self, kind: str, name: str) -> None: ...


@dataclass(frozen=True, slots=True)
class PipelineEntry:
    pipeline: Pipeline
    runner: PipelineRunner


@dataclass(frozen=True, slots=True)
class GraphEntry:
    graph: InferenceGraph
    runner: GraphRunner


class FlowTable:
    def __init__(
        self,
        make_pipeline_runner: Callable[[Pipeline], PipelineRunner],
        make_graph_runner: Callable[[InferenceGraph], GraphRunner],
        states: StateSink,
        supervisor: TaskSupervisor,
    ) -> None:
        self._make_pipeline_runner = make_pipeline_runner
        self._make_graph_runner = make_graph_runner
        self._states = states
        self._supervisor = supervisor
        self._writes = KeyedWorkers(supervisor, "dataflow-state")
        self._pipelines: dict[str, PipelineEntry] = {}
        self._graphs: dict[str, GraphEntry] = {}
        self.chains = ChainIndex()

    def pipeline(self, name: str) -> PipelineEntry | None:
        return self._pipelines.get(name)

    def graph(self, name: str) -> GraphEntry | None:
        return self._graphs.get(name)

    # ---- changes (KV watch callbacks: synchronous, never blocking) ---------------------------
    def pipeline_changed(self, name: str, pipeline: Pipeline | None) -> None:
        old = self._pipelines.pop(name, None)
        if old is not None:
            # Requests still running on the old runner finish; its pending batches are dropped.
            self._supervisor.spawn(f"dataflow-close-pipeline-{name}", old.runner.close())
        if pipeline is None:
            self.chains.remove(name)
            self._write_delete("Pipeline", name)
            return
        generation = pipeline.meta.generation
        try:
            runner = self._make_pipeline_runner(pipeline)
        except ModelplaneError as exc:
            log.warning("pipeline_not_runnable", pipeline=name, error=str(exc))
            self.chains.remove(name)
            self._write("Pipeline", name, generation, FAILED, str(exc))
            return
        self._pipelines[name] = PipelineEntry(pipeline, runner)
        self.chains.set(pipeline)
        self._write("Pipeline", name, generation, READY, "")

    def graph_changed(self, name: str, graph: InferenceGraph | None) -> None:
        self._graphs.pop(name, None)
        if graph is None:
            self._write_delete("InferenceGraph", name)
            return
        generation = graph.meta.generation
        try:
            runner = self._make_graph_runner(graph)
        except ModelplaneError as exc:
            log.warning("graph_not_runnable", graph=name, error=str(exc))
            self._write("InferenceGraph", name, generation, FAILED, str(exc))
            return
        self._graphs[name] = GraphEntry(graph, runner)
        self._write("InferenceGraph", name, generation, READY, "")

    def _write(self, kind: str, name: str, generation: int, state: str, reason: str) -> None:
        async def write() -> None:
            try:
                await self._states.put(kind, name, generation, state, reason)
            except Exception as exc:  # NATS down: the next change writes again
                log.warning("dataflow_state_not_written", kind=kind, name=name, error=str(exc))

        self._writes.submit(f"{kind}.{name}", write)

    def _write_delete(self, kind: str, name: str) -> None:
        async def delete() -> None:
            try:
                await self._states.delete(kind, name)
            except Exception as exc:
                log.warning("dataflow_state_not_deleted", kind=kind, name=name, error=str(exc))

        self._writes.submit(f"{kind}.{name}", delete)

    async def close(self) -> None:
        for entry in self._pipelines.values():
            await entry.runner.close()
        self._pipelines.clear()
        self._graphs.clear()
