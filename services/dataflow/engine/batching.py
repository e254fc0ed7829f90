"""Micro-batching of one step (``batch.size`` > 1), shared by every request of a runner.

Design: a ``StepBatcher`` collects the step calls of concurrent requests until ``size`` of them
wait or ``window_ms`` has passed since the first, then makes ONE model call: the same-named
tensors concatenated along the first dimension (``tensors.concat``). Each output tensor whose
first dimension is the batch total is cut back into the requests' rows; other outputs are copied
to every request. Requests that cannot be concatenated (other tensor names, datatypes or
trailing dimensions) are called one by one instead: batching is an optimisation, never an error.

A request whose run was cancelled while it waited is left out of the batch. The batch call runs
on the batcher's own task, so one request going away does not cancel the others' call.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog

from modelplane.libs.tasks import TaskSupervisor
from modelplane.services.dataflow.engine.calls import StepCaller
from modelplane.services.dataflow.engine.compiled import Batching
from modelplane.services.dataflow.engine.tensors import concat, split
from modelplane.services.dataflow.errors import StepCallError

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Entry:
    request: dict[str, Any]
    answer: asyncio.Future[dict[str, Any]]


class StepBatcher:
    def __init__(self, step: str, model: str, batching: Batching, call: StepCaller) -> None:
        self.step = step
        self.model = model
        self._size = batching.size
        self._window = batching.window_ms / 1000
        self._call = call
        self._pending: list[_Entry] = []
        self._timer: asyncio.Task[None] | None = None
        self._supervisor = TaskSupervisor(f"batcher-{step}")
        self._closed = False

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """The answer to ``request`` (its own rows of the batched answer)."""
        if self._closed:
            # Requests that started on a runner since replaced still finish, unbatched.
            return await self._call(self.model, request)
        entry = _Entry(request, asyncio.get_running_loop().create_future())
        self._pending.append(entry)
        if len(self._pending) >= self._size:
            self._flush()
        elif self._timer is None:
            self._timer = self._supervisor.spawn("window", self._expire())
        return await entry.answer

    async def _expire(self) -> None:
        await asyncio.sleep(self._window)
        self._timer = None
        self._flush()

    def _flush(self) -> None:
        entries, self._pending = self._pending, []
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
        self._timer = None
        if entries:
            self._supervisor.spawn("call", self._call_batch(entries))

    async def _call_batch(self, entries: list[_Entry]) -> None:
        live = [e for e in entries if not e.answer.done()]
        try:
            if len(live) == 1:
                await self._one(live[0])
                return
            batched = concat([e.request.get("inputs") or [] for e in live]) if live else None
            if batched is None:
                await asyncio.gather(*(self._one(e) for e in live))
                return
            tensors, rows = batched
            first = live[0].request
            request: dict[str, Any] = {"id": first.get("id"), "inputs": tensors}
            if "parameters" in first:
                request["parameters"] = first["parameters"]
            log.debug("step_batch_call", step=self.step, requests=len(live), rows=sum(rows))
            try:
                response = await self._call(self.model, request)
                outputs = response.get("outputs")
                if not isinstance(outputs, list):
                    raise StepCallError(self.model, 502, "answered without an outputs list")
            except Exception as exc:
                for entry in live:
                    _fail(entry, exc)
                return
            for entry, part in zip(live, split(outputs, rows), strict=True):
                if not entry.answer.done():
                    entry.answer.set_result({**response, "id": entry.request.get("id"), "outputs": part})
        except asyncio.CancelledError:
            for entry in live:
                _fail(entry, self._closed_error())
            raise

    async def _one(self, entry: _Entry) -> None:
        try:
            response = await self._call(self.model, entry.request)
        except Exception as exc:
            _fail(entry, exc)
            return
        if not entry.answer.done():
            entry.answer.set_result(response)

    def _closed_error(self) -> StepCallError:
        return StepCallError(
            self.model, 503, f"step {self.step}: the pipeline was changed or unloaded while the call waited"
        )

    async def close(self) -> None:
        """Drop the waiting calls (they fail) and cancel the batches in flight (idempotent)."""
        if self._closed:
            return
        self._closed = True
        entries, self._pending = self._pending, []
        for entry in entries:
            _fail(entry, self._closed_error())
        await self._supervisor.close()


def _fail(entry: _Entry, exc: BaseException) -> None:
    if not entry.answer.done():
        entry.answer.set_exception(exc)
