"""Micro-batched steps: concurrent requests share one model call and each gets its own rows."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelplane.services.dataflow.engine import PipelineRunner
from modelplane.services.dataflow.errors import StepFailedError
from tests.dataflow.engine.models import Models, by_name, failing, pipeline, rows, tensor


def batched(size: int, window_ms: int) -> dict[str, Any]:
    return {"steps": [{"name": "rows", "batch": {"size": size, "windowMs": window_ms}}]}


async def run_many(runner: PipelineRunner, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    answers: dict[str, dict[str, Any]] = {}

    async def one(index: int, request: dict[str, Any]) -> None:
        def keep(response: dict[str, Any]) -> None:
            answers[f"r{index}"] = response

        await runner.run(request, request_id=f"r{index}", on_output=keep)

    async with asyncio.TaskGroup() as group:
        for index, request in enumerate(requests):
            group.create_task(one(index, request), name=f"run-r{index}")
    return [answers[f"r{index}"] for index in range(len(requests))]


class Called:
    """A StepObserver signalling the first step call."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def step_called(self, step: str, request: dict[str, Any]) -> None:
        self.event.set()

    def step_answered(self, step: str, response: dict[str, Any]) -> None:
        pass


def request(values: list[int], datatype: str = "FP32") -> dict[str, Any]:
    return {"inputs": [tensor("INPUT0", values, shape=[1, len(values)], datatype=datatype)]}


async def test_two_concurrent_requests_make_one_call_and_each_gets_its_rows() -> None:
    """Batch size 2: one model call with shape[0] doubled; each run answers its own half."""
    models = Models(rows=rows)
    runner = PipelineRunner(pipeline("batch", batched(2, 600_000)), models)
    first, second = await run_many(runner, request([1, 2]), request([3, 4]))
    (call,) = models.calls
    assert call[1]["inputs"][0]["shape"] == [2, 2]
    assert call[1]["inputs"][0]["data"] == [1, 2, 3, 4]
    assert call[1]["id"] == "r0"
    assert by_name(first) == {"OUTPUT0": [1, 2], "BATCH": [2]}
    assert by_name(second) == {"OUTPUT0": [3, 4], "BATCH": [2]}
    assert first["outputs"][0]["shape"] == [1, 2]
    await runner.close()


async def test_a_lone_request_is_called_when_the_window_passes() -> None:
    """A batch that does not fill up is sent once its window has passed."""
    models = Models(rows=rows)
    runner = PipelineRunner(pipeline("batch", batched(2, 50)), models)
    (answer,) = await run_many(runner, request([5, 6]))
    assert by_name(answer) == {"OUTPUT0": [5, 6], "BATCH": [1]}
    await runner.close()


async def test_requests_that_cannot_be_concatenated_are_called_one_by_one() -> None:
    """Other datatypes (or trailing dimensions) fall back to one call per request."""
    models = Models(rows=rows)
    runner = PipelineRunner(pipeline("batch", batched(2, 600_000)), models)
    first, second = await run_many(runner, request([1, 2]), request([3, 4], datatype="INT64"))
    assert len(models.calls) == 2
    assert by_name(first) == {"OUTPUT0": [1, 2], "BATCH": [1]}
    assert by_name(second) == {"OUTPUT0": [3, 4], "BATCH": [1]}
    await runner.close()


async def test_a_failing_batched_call_fails_every_request_in_it() -> None:
    """The model's error ends each request of the batch with StepFailedError."""
    spec = {"steps": [{"name": "fail", "batch": {"size": 2, "windowMs": 600_000}}]}
    runner = PipelineRunner(pipeline("batch", spec), Models(fail=failing))
    with pytest.raises(ExceptionGroup) as caught:
        await run_many(runner, request([1]), request([2]))
    assert [type(e) for e in caught.value.exceptions] == [StepFailedError, StepFailedError]
    await runner.close()


async def test_closing_the_runner_fails_a_call_waiting_for_its_batch() -> None:
    """close() drops pending batches: the waiting request fails instead of hanging."""
    models = Models(rows=rows)
    runner = PipelineRunner(pipeline("batch", batched(2, 600_000)), models)
    called = Called()
    task = asyncio.create_task(
        runner.run(request([1]), request_id="r", on_output=lambda _: None, observer=called)
    )
    # step_called comes right before the call joins its batch, in the same task step
    await called.event.wait()
    await runner.close()
    with pytest.raises(StepFailedError) as caught:
        await task
    assert caught.value.http_status == 503
    assert models.calls == []
