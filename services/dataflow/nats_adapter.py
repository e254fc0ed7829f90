"""NATS side of a dataflow worker: take requests from the shared JetStream consumer, publish
answers, chained requests and step records.

Design: a pull consumer (``subjects.DATAFLOW_WORKERS_CONSUMER``) shared by every worker, so
requests spread over workers and one not acknowledged in time (its worker died) goes to another.
A worker fetches only as many requests as it has free slots, runs each in its own task, tells
JetStream every third of the ack wait that the request is still in progress, and acknowledges it
after the handler returned (its answer is published by then).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext

from modelplane.libs import dataflow_stream, subjects
from modelplane.libs.tasks import TaskSupervisor, cancel_and_wait
from modelplane.services.dataflow.handler import DataflowHandler

log = structlog.get_logger(__name__)

# How long one fetch waits for requests before asking again (also bounds how late close() is
# noticed by the fetch loop).
_FETCH_WAIT_SECONDS = 1.0


class JetStreamPublisher:
    """DataflowPublisher over JetStream: answers and chained requests acknowledged by the
    stream (de-duplicated by message id), step records fire-and-forget."""

    def __init__(self, nc: NATS, js: JetStreamContext, supervisor: TaskSupervisor) -> None:
        self._nc = nc
        self._js = js
        self._supervisor = supervisor

    async def answer(
        self, kind: str, name: str, request_id: str, status: int, body: bytes, headers: Mapping[str, str]
    ) -> None:
        subject = (subjects.pipeline_outputs if kind == "pipeline" else subjects.graph_outputs)(
            name, request_id
        )
        out = dict(headers)
        out[dataflow_stream.MSG_ID] = dataflow_stream.answer_msg_id(kind, name, request_id)
        out[dataflow_stream.STATUS] = str(status)
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
        except Exception as exc:  # a lost record only costs `inspect` one message
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
        self._slots = asyncio.Semaphore(max_concurrent)
        self._max_concurrent = max_concurrent
        self._ack_wait = ack_wait_seconds
        self._max_deliver = max_deliver
        self._sub: Any = None
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = dataflow_stream.workers_consumer(
            self._ack_wait, self._max_deliver, max(1000, self._max_concurrent * 4)
        )
        self._sub = await self._js.pull_subscribe(
            subjects.ALL_DATAFLOW_REQUESTS,
            durable=subjects.DATAFLOW_WORKERS_CONSUMER,
            stream=subjects.DATAFLOW_STREAM,
            config=config,
        )
        self._loop_task = self._supervisor.spawn("dataflow-fetch", self._fetch_loop())

    async def _fetch_loop(self) -> None:
        while True:
            await self._slots.acquire()
            free = 1
            # Take as many slots as are free right now, so one fetch brings a batch.
            while free < self._max_concurrent and not self._slots.locked():
                await self._slots.acquire()
                free += 1
            try:
                msgs = await self._sub.fetch(batch=free, timeout=_FETCH_WAIT_SECONDS)
            except (TimeoutError, NatsTimeoutError):
                msgs = []
            except Exception as exc:  # NATS reconnecting: try again shortly
                log.warning("dataflow_fetch_failed", error=str(exc))
                msgs = []
                await asyncio.sleep(_FETCH_WAIT_SECONDS)
            for _ in range(free - len(msgs)):
                self._slots.release()
            for msg in msgs:
                self._supervisor.spawn("dataflow-request", self._run(msg))

    async def _run(self, msg: Msg) -> None:
        try:
            parsed = parse_request_subject(msg.subject)
            if parsed is None:
                await msg.term()
                return
            kind, name, request_id = parsed
            delivered = msg.metadata.num_delivered or 1
            keepalive = asyncio.create_task(self._keep_alive(msg), name=f"dataflow-keepalive-{request_id}")
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
                await cancel_and_wait(keepalive)
            await msg.ack()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Not acknowledged: JetStream redelivers it (to this or another worker).
            log.exception("dataflow_request_not_acknowledged", subject=msg.subject)
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)
        finally:
            self._slots.release()

    async def _keep_alive(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self._ack_wait / 3)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def close(self) -> None:
        await cancel_and_wait(self._loop_task)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
