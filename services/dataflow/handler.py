"""Running one dataflow request: a pipeline's or an inference graph's, from its message to its answer.

Design: transport-neutral. The NATS adapter hands over the request (kind token, name, request id,
body, headers) and acknowledges it once ``handle`` returns; ``handle`` answers through the
``DataflowPublisher`` and never raises for a request's own failure: every accepted request gets
exactly one answer (an error is an answer). A pipeline answers as soon as its output is known;
steps that do not feed the output (a drift detector, say) run on before the request is
acknowledged, so a worker dying in between re-runs the request and the answer, sent again with
the same message id, is stored once.

Step calls and answers are also published as records (``pipeline inspect``), and events that
chained pipelines listen to become their requests (chaining.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

import orjson
import structlog
from opentelemetry import trace

from modelplane.libs import dataflow_stream, subjects
from modelplane.libs.errors import DeadlineError, InvalidError, ModelplaneError, NotFoundError
from modelplane.libs.logs import log_scope
from modelplane.libs.tasks import TaskSupervisor
from modelplane.libs.telemetry import inject_context, server_span
from modelplane.services.dataflow.chain_joins import ChainJoins
from modelplane.services.dataflow.chaining import chained_request
from modelplane.services.dataflow.errors import NotLoadedYet
from modelplane.services.dataflow.table import GRAPH, PIPELINE, FlowTable

log = structlog.get_logger(__name__)


class DataflowPublisher(Protocol):
    async def answer(
        self,
        kind: str,
        name: str,
        request_id: str,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
        reply_to: str = "",
    ) -> None: ...

    async def request(
        self, kind: str, name: str, request_id: str, body: bytes, headers: Mapping[str, str]
    ) -> None: ...

    def record(self, subject: str, body: bytes, headers: Mapping[str, str]) -> None: ...


_Answer = Callable[[int, bytes], Coroutine[Any, Any, None]]


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


class _Observer:
    """Publishes what each step was sent and answered, and feeds pipelines chained to steps."""

    def __init__(
        self,
        handler: DataflowHandler,
        pipeline: str,
        request_id: str,
        headers: Mapping[str, str],
        pending: list[asyncio.Task[Any]],
    ) -> None:
        self._handler = handler
        self._pipeline = pipeline
        self._request_id = request_id
        self._headers = headers
        self._pending = pending
        # Every step call and answer, published as one record at the end: one message instead
        # of two per step (it is for `inspect`, nobody waits for it).
        self.records: list[dict[str, Any]] = []

    def step_called(self, step: str, request: dict[str, Any]) -> None:
        self._event(step, "inputs", request)

    def step_answered(self, step: str, response: dict[str, Any]) -> None:
        self._event(step, "outputs", response)

    def _event(self, step: str, port: str, payload: dict[str, Any]) -> None:
        self.records.append({"step": step, "port": port, "message": payload})
        self._handler.chain(
            self._pipeline, step, port, self._request_id, payload, self._headers, self._pending
        )


class DataflowHandler:
    def __init__(
        self,
        table: FlowTable,
        publisher: DataflowPublisher,
        supervisor: TaskSupervisor,
        joins: ChainJoins | None = None,
    ) -> None:
        self._table = table
        # Chained pipelines joining several upstream events (None: such joins are skipped).
        self._joins = joins
        self._publisher = publisher
        self._supervisor = supervisor
        self._tracer = trace.get_tracer("modelplane.dataflow")

    async def handle(
        self,
        kind: str,
        name: str,
        request_id: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        last_delivery: bool = False,
    ) -> None:
        """Run one request and publish its answer (once; errors included)."""
        with (
            log_scope(request_id=request_id, flow=f"{kind}.{name}"),
            server_span(self._tracer, f"dataflow {kind} {name}", headers),
        ):
            answered = False

            def answer(status: int, payload: bytes) -> Coroutine[Any, Any, None]:
                # Marked answered at once (not when the publish runs): a later failure of a
                # side step must not answer a second time.
                nonlocal answered
                if answered:
                    return asyncio.sleep(0)
                answered = True
                out_headers: dict[str, str] = {}
                inject_context(out_headers)
                reply_to = headers.get(dataflow_stream.REPLY_TO, "")
                return self._publisher.answer(kind, name, request_id, status, payload, out_headers, reply_to)

            try:
                deadline = headers.get(dataflow_stream.DEADLINE)
                if deadline and float(deadline) < time.time():
                    raise DeadlineError(
                        f"{kind} {name}: the caller stopped waiting before a worker took the request"
                    )
                if kind == PIPELINE:
                    await self._run_pipeline(name, request_id, body, headers, answer)
                elif kind == GRAPH:
                    await self._run_graph(name, body, headers, answer)
                else:
                    raise NotFoundError(f"no dataflow kind {kind!r}")
            except NotLoadedYet as exc:
                if not last_delivery:
                    raise
                await answer(404, error_body(f"{exc.what} is not loaded by the dataflow workers"))
            except ModelplaneError as exc:
                if answered:
                    log.warning("dataflow_side_step_failed", error=str(exc))
                else:
                    await answer(exc.http_status, error_body(exc.message))
            except Exception:
                log.exception("dataflow_request_crashed")
                if not answered and last_delivery:
                    # Only at the last delivery: an earlier crash may be the worker's, not the
                    # request's, and the next worker may succeed.
                    await answer(500, error_body(f"{kind} {name}: internal error running the request"))
                elif not answered:
                    raise

    async def _run_pipeline(
        self, name: str, request_id: str, body: bytes, headers: Mapping[str, str], answer: _Answer
    ) -> None:
        entry = self._table.pipeline(name)
        if entry is None:
            raise NotLoadedYet(f"pipeline {name}")
        request = _json_object(body, f"pipeline {name}")
        trace_headers: dict[str, str] = {}
        inject_context(trace_headers)
        # Publications this request caused (its answer, chained requests): all of them are out
        # before the request is acknowledged, so a worker dying in between loses none.
        pending: list[asyncio.Task[Any]] = []
        # Chained pipelines may listen to this pipeline's own inputs.
        self.chain(name, "", "inputs", request_id, request, trace_headers, pending)

        def on_output(response: dict[str, Any]) -> None:
            payload = orjson.dumps(response)
            pending.append(self._supervisor.spawn(f"dataflow-answer-{request_id}", answer(200, payload)))
            self.chain(name, "", "outputs", request_id, response, trace_headers, pending)

        observer = _Observer(self, name, request_id, trace_headers, pending)
        try:
            await entry.runner.run(request, request_id=request_id, on_output=on_output, observer=observer)
        finally:
            if observer.records:
                self._publisher.record(
                    subjects.pipeline_steps(name, request_id), orjson.dumps(observer.records), trace_headers
                )
            # The list may grow while we wait (a chained publish spawned by a late step).
            while pending:
                await pending.pop(0)

    async def _run_graph(self, name: str, body: bytes, headers: Mapping[str, str], answer: Any) -> None:
        entry = self._table.graph(name)
        if entry is None:
            raise NotLoadedYet(f"inference graph {name}")
        call_headers: dict[str, str] = {"content-type": "application/json"}
        inject_context(call_headers)
        result = await entry.runner.run(body, call_headers)
        await answer(result.status, result.body)

    # ---- step records and chaining ------------------------------------------------------------
    def chain(
        self,
        pipeline: str,
        step: str,
        port: str,
        request_id: str,
        payload: Mapping[str, Any],
        headers: Mapping[str, str],
        pending: list[asyncio.Task[Any]],
    ) -> None:
        listeners = self._table.chains.listeners(pipeline, step, port)
        if not listeners:
            return
        tensors = payload.get("inputs" if port == "inputs" else "outputs") or []
        chained_headers = {k: v for k, v in headers.items() if k == dataflow_stream.TRACEPARENT}
        for link in listeners:
            if link.joined_across_events:
                if self._joins is None:
                    log.warning("chain_join_unavailable", pipeline=link.target)
                    continue
                pending.append(
                    self._supervisor.spawn(
                        f"dataflow-chain-join-{link.target}-{request_id}",
                        self._joins.contribute(
                            link,
                            request_id,
                            (pipeline, step, port),
                            list(tensors),
                            payload.get("parameters"),
                            chained_headers,
                        ),
                    )
                )
                continue
            request = chained_request(link, list(tensors), payload.get("parameters"))
            if request is None:
                continue
            pending.append(
                self._supervisor.spawn(
                    f"dataflow-chain-{link.target}-{request_id}",
                    self._publisher.request(
                        PIPELINE, link.target, request_id, orjson.dumps(request), chained_headers
                    ),
                )
            )


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidError(f"{what}: the request is not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise InvalidError(f"{what}: the request must be a JSON object (a V2 inference request)")
    return value
