"""Reading what a pipeline's steps were sent and answered, from the dataflow stream.

Design: the dataflow workers record every step call and answer of a request as one message on
``modelplane.dataflow.steps.<pipeline>.<request id>`` (a JSON list of ``{step, port, message}``),
and requests and answers live on their own subjects in the same stream. Like Seldon's
``pipeline inspect``, this shows the latest request (or the one asked for): JetStream's "last
message on a subject" look-up finds the latest request id with a wildcard, then that request's
messages by their exact subjects. A step that ran more than once (a cycle) shows its last call.
Nothing is kept besides the stream, so what it shows is bounded by the stream's age.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError as JsNotFoundError

from modelplane.libs import subjects
from modelplane.libs.errors import NotFoundError, RetryableError
from modelplane.libs.resources.types import Pipeline

PORTS = ("inputs", "outputs")


@dataclass(frozen=True, slots=True)
class StepRecord:
    step: str
    port: str
    json: str
    time: str


@dataclass(frozen=True, slots=True)
class Inspection:
    request_id: str
    records: tuple[StepRecord, ...]


class PipelineInspector:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def _last(self, subject: str) -> tuple[str, bytes, str] | None:
        """(subject, data, time) of the latest message on ``subject`` (wildcards allowed)."""
        try:
            msg = await self._js.get_last_msg(subjects.DATAFLOW_STREAM, subject)
        except JsNotFoundError:
            return None
        except Exception as exc:  # NATS trouble: the caller may retry
            raise RetryableError(f"cannot read the dataflow stream: {exc}") from exc
        stamp = (
            msg.time.astimezone(UTC).isoformat() if isinstance(msg.time, datetime) else str(msg.time or "")
        )
        return msg.subject or subject, msg.data or b"", stamp

    async def inspect(self, pipeline: Pipeline, step: str = "", request_id: str = "") -> Inspection:
        name = pipeline.meta.name
        if not request_id:
            latest = await self._last(subjects.pipeline_inputs(name, "*"))
            if latest is None:
                raise NotFoundError(f"pipeline {name} has no request in the dataflow stream yet")
            request_id = latest[0].rsplit(".", 1)[-1]
        records: list[StepRecord] = []
        if not step:
            for port, subject in (
                ("inputs", subjects.pipeline_inputs(name, request_id)),
                ("outputs", subjects.pipeline_outputs(name, request_id)),
            ):
                found = await self._last(subject)
                if found is not None:
                    records.append(StepRecord("", port, found[1].decode("utf-8", "replace"), found[2]))
        found = await self._last(subjects.pipeline_steps(name, request_id))
        if found is not None:
            records.extend(_step_records(found[1], found[2], step, [s.name for s in pipeline.spec.steps]))
        if not records:
            raise NotFoundError(f"pipeline {name} has no record of request {request_id}")
        return Inspection(request_id, tuple(records))


def _step_records(body: bytes, time: str, only: str, order: list[str]) -> list[StepRecord]:
    """The last call and answer of each step (in the pipeline's step order) from one request's
    record; only ``only``'s when given."""
    try:
        entries = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    last: dict[tuple[str, str], StepRecord] = {}
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or (only and entry.get("step") != only):
            continue
        step, port = str(entry.get("step", "")), str(entry.get("port", ""))
        last[(step, port)] = StepRecord(step, port, orjson.dumps(entry.get("message")).decode(), time)
    return [last[(s, p)] for s in order for p in PORTS if (s, p) in last]
