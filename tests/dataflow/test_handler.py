"""The dataflow handler's own rules, with a publisher that records what it is asked to send."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from modelplane.libs.tasks import TaskSupervisor
from modelplane.services.dataflow.errors import NotLoadedYet
from modelplane.services.dataflow.handler import DataflowHandler
from modelplane.services.dataflow.table import FlowTable


class RecordingPublisher:
    def __init__(self) -> None:
        self.answers: list[tuple[str, str, str, int, dict[str, Any]]] = []

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
        self.answers.append((kind, name, request_id, status, orjson.loads(body)))

    async def request(
        self, kind: str, name: str, request_id: str, body: bytes, headers: Mapping[str, str]
    ) -> None:
        raise AssertionError("no chained request expected")

    def record(self, subject: str, body: bytes, headers: Mapping[str, str]) -> None:
        pass


class NoStates:
    async def put(self, kind: str, name: str, generation: int, state: str, reason: str) -> None:
        pass

    async def delete(self, kind: str, name: str) -> None:
        pass


def _no_runner(_: Any) -> Any:
    raise AssertionError("no resource is loaded in these tests")


async def test_a_request_for_a_pipeline_not_loaded_yet_goes_back_then_gets_404() -> None:
    """Before its last delivery the request is handed back (the pipeline may be a moment old);
    at the last one it is answered 404, once."""
    supervisor = TaskSupervisor("test")
    publisher = RecordingPublisher()
    handler = DataflowHandler(
        FlowTable(_no_runner, _no_runner, NoStates(), supervisor), publisher, supervisor
    )
    try:
        with pytest.raises(NotLoadedYet):
            await handler.handle("pipeline", "fresh", "r1", b"{}", {})
        assert publisher.answers == []
        await handler.handle("pipeline", "fresh", "r1", b"{}", {}, last_delivery=True)
        assert publisher.answers == [
            (
                "pipeline",
                "fresh",
                "r1",
                404,
                {"error": "pipeline fresh is not loaded by the dataflow workers"},
            )
        ]
    finally:
        await supervisor.close()


async def test_a_request_past_its_deadline_is_answered_504_without_running() -> None:
    """A request whose caller stopped waiting gets a 504 answer at once."""
    supervisor = TaskSupervisor("test")
    publisher = RecordingPublisher()
    handler = DataflowHandler(
        FlowTable(_no_runner, _no_runner, NoStates(), supervisor), publisher, supervisor
    )
    try:
        await handler.handle("pipeline", "any", "r2", b"{}", {"Modelplane-Deadline": "1.0"})
        assert [(a[3], "stopped waiting" in a[4]["error"]) for a in publisher.answers] == [(504, True)]
    finally:
        await supervisor.close()
