"""Composition root of a dataflow worker: pipelines and graphs from KV, requests from JetStream,
step calls forwarded by the worker's own data plane (or through the gateway)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from nats.aio.client import Client as NATS

from modelplane.libs import dataflow_stream, subjects
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.resources import convert
from modelplane.libs.resources.types import InferenceGraph, Pipeline
from modelplane.libs.store import TypedBucket, connect, disconnect, ensure_buckets
from modelplane.libs.tasks import TaskSupervisor
from modelplane.libs.telemetry import inject_context
from modelplane.libs.watching import BucketWatch, watch_buckets
from modelplane.proto import resources_pb2, state_pb2
from modelplane.services.dataflow.chain_joins import ChainJoins, open_joins_bucket
from modelplane.services.dataflow.dataplane import WorkerDataPlane
from modelplane.services.dataflow.engine import PipelineRunner, StepCaller, compile_pipeline
from modelplane.services.dataflow.gateway_client import GatewayClient
from modelplane.services.dataflow.graph.run import GraphRunner
from modelplane.services.dataflow.graph_calls import GraphCalls
from modelplane.services.dataflow.handler import DataflowHandler
from modelplane.services.dataflow.nats_adapter import (
    JetStreamPublisher,
    RequestConsumer,
    replace_foreign_consumer,
)
from modelplane.services.dataflow.settings import DataflowSettings
from modelplane.services.dataflow.table import FlowTable

# How long start() waits for the KV replays before giving up.
_CATCH_UP_TIMEOUT = 30.0


class KvStates:
    """StateSink over KV_DATAFLOW."""

    def __init__(self, bucket: TypedBucket[state_pb2.DataflowState]) -> None:
        self._bucket = bucket

    async def put(self, kind: str, name: str, generation: int, state: str, reason: str) -> None:
        await self._bucket.put(
            subjects.status_key(kind, name),
            state_pb2.DataflowState(
                kind=kind,
                name=name,
                generation=generation,
                state=state,
                reason=reason,
                updated_at=now_rfc3339(),
            ),
        )

    async def delete(self, kind: str, name: str) -> None:
        await self._bucket.delete(subjects.status_key(kind, name))


class DataflowApp:
    name = "dataflow"

    def __init__(self, settings: DataflowSettings) -> None:
        self.settings = settings
        self.shutdown_timeout = settings.shutdown_timeout
        self.table: FlowTable | None = None
        self._nc: NATS | None = None
        self._client: GatewayClient | None = None
        self._dataplane: WorkerDataPlane | None = None
        self._consumer: RequestConsumer | None = None
        self._supervisor = TaskSupervisor("dataflow")
        self._closed = False

    @property
    def loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop] | None:
        """The event loop ``modelplane run dataflow`` runs this worker on (settings.event_loop)."""
        if self.settings.event_loop == "uvloop":
            import uvloop  # installed with MLServer; imported only where it is used

            return uvloop.new_event_loop
        return None

    async def start(self) -> None:
        settings = self.settings
        nc = await connect(settings.nats_url, name="modelplane-dataflow", creds=settings.nats_creds)
        self._nc = nc
        js = nc.jetstream()
        await ensure_buckets(js)
        await dataflow_stream.ensure_stream(js, settings.stream_max_age_seconds, settings.stream_max_bytes)
        await replace_foreign_consumer(nc, js)
        # Graph steps go through the gateway (their bodies may be V1 or any JSON, which the
        # gateway translates); pipeline steps too when step_calls = gateway.
        token = settings.gateway_token.get_secret_value() if settings.gateway_token is not None else None
        client = GatewayClient(
            settings.gateway_url,
            timeout=settings.upstream_timeout_seconds,
            token=token,
            ca=settings.gateway_ca,
        )
        self._client = client
        step_caller: StepCaller
        if settings.step_calls == "direct":
            self._dataplane = WorkerDataPlane(settings)
            step_caller = (await self._dataplane.start(nc, js, self._supervisor)).infer
        else:

            async def through_gateway(model: str, request: dict[str, Any]) -> dict[str, Any]:
                # The step's call continues the request's trace (the run's tasks carry its span).
                headers: dict[str, str] = {}
                inject_context(headers)
                return await client.infer(model, request, headers=headers)

            step_caller = through_gateway

        def make_pipeline_runner(pipeline: Pipeline) -> PipelineRunner:
            return PipelineRunner(compile_pipeline(pipeline.meta.name, pipeline.spec), step_caller)

        def make_graph_runner(graph: InferenceGraph) -> GraphRunner:
            return GraphRunner(graph.meta.name, graph.spec, GraphCalls(client))

        states = KvStates(await TypedBucket.open(js, subjects.KV_DATAFLOW, state_pb2.DataflowState))
        table = FlowTable(make_pipeline_runner, make_graph_runner, states, self._supervisor)
        self.table = table

        def on_pipeline(key: str, msg: Any) -> None:
            table.pipeline_changed(key, convert.pipeline_from_pb(msg) if msg is not None else None)

        def on_graph(key: str, msg: Any) -> None:
            table.graph_changed(key, convert.graph_from_pb(msg) if msg is not None else None)

        await watch_buckets(
            js,
            self._supervisor,
            (
                BucketWatch(subjects.KV_PIPELINES, resources_pb2.Pipeline, on_pipeline),
                BucketWatch(subjects.KV_INFERENCE_GRAPHS, resources_pb2.InferenceGraph, on_graph),
            ),
            _CATCH_UP_TIMEOUT,
            "dataflow worker",
        )
        publisher = JetStreamPublisher(nc, js, self._supervisor)

        async def publish_chained(
            target: str, request_id: str, request: dict[str, Any], headers: Any
        ) -> None:
            await publisher.request("pipeline", target, request_id, orjson.dumps(request), headers)

        joins = ChainJoins(await open_joins_bucket(js), publish_chained, self._supervisor)
        handler = DataflowHandler(table, publisher, self._supervisor, joins)
        self._consumer = RequestConsumer(
            js,
            handler,
            self._supervisor,
            max_concurrent=settings.max_concurrent_requests,
            ack_wait_seconds=settings.ack_wait_seconds,
            max_deliver=settings.max_deliver,
        )
        await self._consumer.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._consumer is not None:
            # Requests running get most of the shutdown time to finish; the rest are redelivered.
            await self._consumer.close(grace_seconds=max(0.0, self.shutdown_timeout - 2.0))
        await self._supervisor.close()
        if self.table is not None:
            await self.table.close()
        if self._client is not None:
            await self._client.close()
        if self._dataplane is not None:
            await self._dataplane.close()
        await disconnect(self._nc)


def create() -> DataflowApp:
    return DataflowApp(DataflowSettings.model_validate({}))
