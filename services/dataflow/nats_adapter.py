"""NATS side of a dataflow worker: take requests from the shared JetStream consumer, publish
answers, chained requests and step records.

Design: one durable push consumer (``subjects.DATAFLOW_WORKERS_CONSUMER``) delivering to a queue
group every worker joins: the server hands each request to one worker as soon as it is stored,
and one not acknowledged within the ack wait (its worker died) goes to another. Each request
runs in its own task; a worker already running ``max_concurrent`` requests hands a new one back
(nak with a short delay). One task tells JetStream, every third of the ack wait, that requests
running that long are still in progress; a request is acknowledged after the handler returned
(its answer is published by then).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError as JsNotFoundError

from modelplane.libs import dataflow_stream, subjects
from modelplane.libs.tasks import TaskSupervisor, cancel_and_wait
from modelplane.services.dataflow.errors import NotLoadedYet
from modelplane.services.dataflow.handler import DataflowHandler

log = structlog.get_logger(__name__)

# Delay before a request naming a pipeline this worker has not loaded yet is delivered again.
_EARLY_RETRY_SECONDS = 0.5


class JetStreamPublisher:
    """DataflowPublisher over JetStream: answers and chained requests acknowledged by the
    stream (de-duplicated by message id), step records fire-and-forget."""

    def __init__(self, nc: NATS, js: JetStreamContext, supervisor: TaskSupervisor) -> None:
        self._nc = nc
        self._js = js
        self._supervisor = supervisor

    async def answer(
        self,
        kind: str,
        name: str,
        request_id: str,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
        reply_to: str = "",
    ) -> None:
        subject = (subjects.pipeline_outputs if kind == "pipeline" else subjects.graph_outputs)(
            name, request_id
        )
        out = dict(headers)
        out[dataflow_stream.STATUS] = str(status)
        if reply_to:
            # Buffered, then written together with the stream publish below.
            await self._nc.publish(reply_to, body, headers=out)
        out[dataflow_stream.MSG_ID] = dataflow_stream.answer_msg_id(kind, name, request_id)
        await self._js.publish(subject, body, headers=out)

    async def request(
        self, kind: str, name: str, request_id: str, body: bytes, headers: Mapping[str, str]
    ) -> None:
        subject = (subjects.pipeline_inputs if kind == "pipeline" else subjects.graph_inputs)(
            name, request_id
        )
        out = dict(headers)
        out[dataflow_stream.MSG_ID] = dataflow_stream.request_msg_id(kind, name, request_id)
        await self._js.publish(subject, body, headers=out)

    def record(self, subject: str, body: bytes, headers: Mapping[str, str]) -> None:
        self._supervisor.spawn("dataflow-record", self._record(subject, body, dict(headers)))

    async def _record(self, subject: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            await self._nc.publish(subject, body, headers=headers or None)
        except Exception as exc:  # a lost record only costs `inspect` one request
            log.debug("step_record_lost", subject=subject, error=str(exc))


def parse_request_subject(subject: str) -> tuple[str, str, str] | None:
    """(kind token, name, request id) of ``modelplane.dataflow.<kind>.<name>.inputs.<id>``."""
    prefix = subjects.DATAFLOW_PREFIX + "."
    if not subject.startswith(prefix):
        return None
    parts = subject[len(prefix) :].split(".")
    if len(parts) != 4 or parts[2] != "inputs":
        return None
    return parts[0], parts[1], parts[3]


async def replace_foreign_consumer(nc: NATS, js: JetStreamContext) -> None:
    """Delete the shared workers' consumer when it delivers outside this user's inbox prefix.

    A consumer made before the workers had their own NATS user (state from an older `up`)
    delivers to an inbox the ``dataflow`` user may not subscribe to (``nats_permissions``):
    the workers would never get a request. Deleted, it is made again by the next subscribe,
    which offers every request still in the stream again (deliver policy all): those past
    their deadline are dropped by the handler, the others answered once more (de-duplicated
    in the stream by message id).
    """
    own_prefix = nc.new_inbox().rsplit(".", 1)[0] + "."
    stream, durable = subjects.DATAFLOW_STREAM, subjects.DATAFLOW_WORKERS_CONSUMER
    try:
        info = await js.consumer_info(stream, durable)
    except JsNotFoundError:
        return
    deliver = info.config.deliver_subject or ""
    if deliver.startswith(own_prefix):
        return
    log.warning("dataflow_consumer_replaced", consumer=durable, deliver_subject=deliver)
    with contextlib.suppress(JsNotFoundError):  # another worker replaced it first
        await js.delete_consumer(stream, durable)


class RequestConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        handler: DataflowHandler,
        supervisor: TaskSupervisor,
        *,
        max_concurrent: int,
        ack_wait_seconds: float,
        max_deliver: int,
    ) -> None:
        self._js = js
        self._handler = handler
        self._supervisor = supervisor
        # Requests running now (close() lets them finish).
        self._running: set[asyncio.Task[None]] = set()
        self._max_concurrent = max_concurrent
        self._ack_wait = ack_wait_seconds
        self._max_deliver = max_deliver
        self._sub: Any = None
        self._keepalive_task: asyncio.Task[None] | None = None
        # Messages being handled (by id: Msg is not hashable) with when their handling started.
        self._in_progress: dict[int, tuple[Msg, float]] = {}

    async def start(self) -> None:
        config = dataflow_stream.workers_consumer(
            self._ack_wait, self._max_deliver, max(1000, self._max_concurrent * 4)
        )
        # A push consumer delivering to a queue group: the server hands each request to one
        # worker as soon as it is stored (no polling delay), and redelivers what a dead worker
        # never acknowledged.
        self._sub = await self._js.subscribe(
            subjects.ALL_DATAFLOW_REQUESTS,
            queue=subjects.DATAFLOW_WORKERS_CONSUMER,
            durable=subjects.DATAFLOW_WORKERS_CONSUMER,
            stream=subjects.DATAFLOW_STREAM,
            config=config,
            manual_ack=True,
            cb=self._on_request,
        )
        self._keepalive_task = self._supervisor.spawn("dataflow-keepalive", self._keep_alive())

    async def _on_request(self, msg: Msg) -> None:
        # Runs in the subscription's delivery loop: hand the request to its own task at once.
        if len(self._running) >= self._max_concurrent:
            # Full: JetStream offers it again shortly (maybe to another worker).
            with contextlib.suppress(Exception):
                await msg.nak(delay=0.5)
            return
        task = self._supervisor.spawn("dataflow-request", self._run(msg))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, msg: Msg) -> None:
        try:
            parsed = parse_request_subject(msg.subject)
            if parsed is None:
                await msg.term()
                return
            kind, name, request_id = parsed
            delivered = msg.metadata.num_delivered or 1
            self._in_progress[id(msg)] = (msg, time.monotonic())
            try:
                await self._handler.handle(
                    kind,
                    name,
                    request_id,
                    msg.data,
                    dict(msg.headers or {}),
                    last_delivery=delivered >= self._max_deliver,
                )
            finally:
                self._in_progress.pop(id(msg), None)
            await msg.ack()
        except asyncio.CancelledError:
            raise
        except NotLoadedYet as exc:
            # Applied a moment ago: this worker's table has not caught up yet.
            log.debug("dataflow_request_early", subject=msg.subject, flow=exc.what)
            with contextlib.suppress(Exception):
                await msg.nak(delay=_EARLY_RETRY_SECONDS)
        except Exception:
            # Not acknowledged: JetStream redelivers it (to this or another worker).
            log.exception("dataflow_request_not_acknowledged", subject=msg.subject)
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)

    async def _keep_alive(self) -> None:
        """Tell JetStream, every third of the ack wait, that requests running for longer than
        that are still in progress (one task for all of them)."""
        period = self._ack_wait / 3
        while True:
            await asyncio.sleep(period)
            due = time.monotonic() - period
            for msg, started in list(self._in_progress.values()):
                if started <= due:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Stop taking requests; let those running finish for up to ``grace_seconds`` (the rest
        are cancelled by their supervisor and, unacknowledged, go to another worker)."""
        if self._sub is not None:
            # Stop deliveries (the durable consumer stays for the other workers).
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        if self._running:
            await asyncio.wait(set(self._running), timeout=grace_seconds)
        await cancel_and_wait(self._keepalive_task)
