"""Synchronous inference of pipelines and inference graphs: a request in, its answer back.

Design: the gateway does not run pipelines; it publishes the request into the dataflow stream
(JetStream acknowledges it: from then on the request is durable and some dataflow worker will
answer it, even if the one that takes it dies) and waits for the answer. The worker stores the
answer in the stream (for asynchronous callers and chained pipelines) and also sends it to the
reply subject the request named: this gateway's inbox, subscribed once, so a request costs no
subscription of its own. The inbox subscription exists before any publish, on the same
connection, so no answer can slip past it. The answer's status header carries the HTTP status;
its body is the answer as the caller receives it.

Which pipelines and graphs exist comes from their KV buckets (a ``FlowNames`` table each), so an
unknown name is a 404 at once rather than a time-out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from modelplane.libs import dataflow_stream, subjects
from modelplane.libs.errors import DeadlineError, InvalidError, ModelplaneError, NotFoundError, RetryableError
from modelplane.libs.nats_messages import peer_only
from modelplane.libs.resources.types import InferenceGraph, Pipeline
from modelplane.libs.telemetry import inject_context

log = structlog.get_logger(__name__)

PIPELINE: Final = "pipeline"
GRAPH: Final = "graph"
# Name suffixes selecting a pipeline / a graph (URL model name or seldon-model header).
PIPELINE_SUFFIX: Final = ".pipeline"
GRAPH_SUFFIX: Final = ".graph"


class PayloadTooLargeError(InvalidError):
    """A request larger than one NATS message may be: sending it again cannot help (413)."""

    http_status = 413
    grpc_code_name = "RESOURCE_EXHAUSTED"


def message_size(body: bytes, headers: Mapping[str, str]) -> int:
    """Bytes NATS counts against its payload limit: the body plus the header block
    (``NATS/1.0\r\n``, one ``name: value\r\n`` per header, a closing ``\r\n``)."""
    return len(body) + 12 + sum(len(k) + len(v) + 4 for k, v in headers.items())


def flow_of(name: str) -> tuple[str, str] | None:
    """(kind, name) when ``name`` addresses a pipeline or a graph, else None."""
    if name.endswith(PIPELINE_SUFFIX):
        return PIPELINE, name[: -len(PIPELINE_SUFFIX)]
    if name.endswith(GRAPH_SUFFIX):
        return GRAPH, name[: -len(GRAPH_SUFFIX)]
    return None


class FlowNames:
    """The pipelines (or graphs) that exist, with their time-out; a ``SyncedTable``."""

    def __init__(self) -> None:
        self._timeouts: dict[str, float] = {}
        self._syncing: set[str] | None = None

    def begin_sync(self) -> None:
        self._syncing = set()

    def put(self, resource: Pipeline | InferenceGraph, /) -> None:
        name = resource.meta.name
        timeout = resource.spec.timeout_seconds if isinstance(resource, InferenceGraph) else 0.0
        self._timeouts[name] = timeout
        if self._syncing is not None:
            self._syncing.add(name)

    def delete(self, key: str, /) -> None:
        self._timeouts.pop(key, None)

    def end_sync(self) -> None:
        if self._syncing is not None:
            for name in set(self._timeouts) - self._syncing:
                del self._timeouts[name]
        self._syncing = None

    def __len__(self) -> int:
        return len(self._timeouts)

    def __contains__(self, name: object) -> bool:
        return name in self._timeouts

    def timeout(self, name: str) -> float:
        return self._timeouts.get(name, 0.0)


@dataclass(frozen=True, slots=True)
class FlowAnswer:
    status: int
    body: bytes


class DataflowInvoker:
    """Publishes requests into the dataflow stream and hands each caller its answer.

    Answers come back on one subscription of this gateway's own inbox (``<inbox>.<request id>``,
    named in the request's reply-to header), so a request costs no subscription of its own.
    ``start`` subscribes; ``close`` unsubscribes and fails the callers still waiting."""

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        pipelines: FlowNames,
        graphs: FlowNames,
        timeout_seconds: float,
    ) -> None:
        self._nc = nc
        self._js = js
        self._names = {PIPELINE: pipelines, GRAPH: graphs}
        self._timeout = timeout_seconds
        self._inbox = nc.new_inbox()
        self._waiting: dict[str, asyncio.Future[FlowAnswer]] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        # peer_only: an answer is published by a worker; a stream consumer pushing into this
        # inbox (anyone who may write a stream can aim one here) is not one.
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=peer_only(self._on_answer))

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(RetryableError("the gateway is shutting down"))
        self._waiting.clear()

    async def _on_answer(self, msg: Msg) -> None:
        waiter = self._waiting.pop(msg.subject.rsplit(".", 1)[-1], None)
        if waiter is None or waiter.done():
            return  # a second answer of a redelivered request, or its caller gave up
        status = int((msg.headers or {}).get(dataflow_stream.STATUS, "200"))
        waiter.set_result(FlowAnswer(status=status, body=msg.data))

    def knows(self, kind: str, name: str) -> bool:
        return name in self._names[kind]

    def check_known(self, kind: str, name: str) -> None:
        if name not in self._names[kind]:
            what = "pipeline" if kind == PIPELINE else "inference graph"
            raise NotFoundError(f"{what} {name} not found")

    async def call(
        self, kind: str, name: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> FlowAnswer:
        """Run one request of pipeline/graph ``name`` and return its answer.

        NotFoundError for an unknown name; RetryableError when the stream cannot take the
        request; DeadlineError when no answer came in time (the request may still run)."""
        self.check_known(kind, name)
        if self._sub is None:
            raise RetryableError("the gateway is not ready for pipeline requests")
        timeout = self._names[kind].timeout(name) or self._timeout
        request_id = os.urandom(16).hex()
        inputs = (subjects.pipeline_inputs if kind == PIPELINE else subjects.graph_inputs)(name, request_id)
        out: dict[str, str] = dict(headers) if headers else {}
        inject_context(out)
        out[dataflow_stream.MSG_ID] = dataflow_stream.request_msg_id(kind, name, request_id)
        out[dataflow_stream.DEADLINE] = f"{time.time() + timeout:.3f}"
        out[dataflow_stream.REPLY_TO] = f"{self._inbox}.{request_id}"
        # Over the server's limit the publish would fail the same way every time: not a 503 to
        # retry but the client's 413 (the request never enters the stream).
        limit = self._nc.max_payload
        size = message_size(body, out)
        if limit and size > limit:
            raise PayloadTooLargeError(
                f"{kind} {name}: the request is {size} bytes; pipeline and inference-graph requests "
                f"travel as one NATS message of at most {limit} bytes (the server's max_payload)"
            )
        waiter: asyncio.Future[FlowAnswer] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        try:
            try:
                await self._js.publish(inputs, body, headers=out, timeout=min(timeout, 5.0))
            except Exception as exc:  # no stream, NATS down: nothing was accepted
                raise RetryableError(
                    f"{kind} {name}: the dataflow stream did not take the request ({exc})"
                ) from exc
            try:
                return await asyncio.wait_for(waiter, timeout)
            except TimeoutError as exc:
                raise DeadlineError(f"{kind} {name} did not answer within {timeout:g} s") from exc
        finally:
            self._waiting.pop(request_id, None)


def answer_error(kind: str, name: str, answer: FlowAnswer) -> ModelplaneError:
    """The error a non-2xx answer stands for (its ``{"error": ...}`` text, its status class),
    for callers that cannot pass an HTTP status on as it is (gRPC)."""
    message = answer.body.decode("utf-8", "replace")
    with contextlib.suppress(ValueError):
        parsed = orjson.loads(answer.body)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            message = parsed["error"]
    text = f"{kind} {name}: {message}"
    error_type = _ERRORS_BY_STATUS.get(answer.status)
    if error_type is not None:
        return error_type(text)
    if 400 <= answer.status < 500:
        return InvalidError(text)
    return ModelplaneError(text)


_ERRORS_BY_STATUS: Final[dict[int, type[ModelplaneError]]] = {
    400: InvalidError,
    404: NotFoundError,
    422: InvalidError,
    502: RetryableError,
    503: RetryableError,
    504: DeadlineError,
}


def graph_answer_as_v2(name: str, body: bytes) -> dict[str, Any]:
    """A graph's answer as one V2 response (for gRPC callers): a V2 response as it is; an
    Ensemble's ``{"step": <V2 response>, ...}`` merged, each tensor named ``<step>.<tensor>``."""
    parsed = orjson.loads(body)
    if isinstance(parsed, dict) and isinstance(parsed.get("outputs"), list):
        return parsed
    if (
        isinstance(parsed, dict)
        and parsed
        and all(isinstance(v, dict) and "outputs" in v for v in parsed.values())
    ):
        outputs = []
        for step, answer in parsed.items():
            for tensor in answer["outputs"]:
                renamed = dict(tensor)
                renamed["name"] = f"{step}.{tensor.get('name', '')}"
                outputs.append(renamed)
        return {"model_name": name, "outputs": outputs}
    raise InvalidError(f"inference graph {name} answered JSON that is not a V2 response; call it over REST")
