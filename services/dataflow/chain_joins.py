"""Joins of a chained pipeline across several upstream events (chaining.py), kept in NATS KV.

Design: a chained pipeline ``q`` with ``externalInputs: [p1.outputs, p2.outputs]`` gets, for one
request id, an event from ``p1``'s worker and one from ``p2``'s, possibly on different workers.
Each worker adds its event's ``Contribution`` to the KV entry ``<q>.<request id>`` (revision
checked, retried on a concurrent write) and, if ``q``'s join now holds, publishes ``q``'s
request; the message id makes a second publication (two workers seeing the join complete at
once) a no-op. An outer join (or outer triggers) also gets a timer at the first contribution:
when its window passes, whatever arrived is sent. Entries expire with the bucket's TTL, so a
join that never completes leaves nothing behind. A worker that dies while holding an outer
join's timer loses that request's partial join (the inner and any joins are not affected).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from modelplane.libs import subjects
from modelplane.libs.resources.types import DEFAULT_JOIN_WINDOW_MS
from modelplane.libs.tasks import TaskSupervisor
from modelplane.services.dataflow.chaining import ChainLink, contribution, joined_across, source_name

log = structlog.get_logger(__name__)

# Seconds a partial join is kept: far longer than any join window.
JOIN_TTL_SECONDS = 600.0
_PARAMETERS = "_parameters"
_WRITE_ATTEMPTS = 20

# (target pipeline, request id, request, headers) -> publication of the chained request
Publish = Callable[[str, str, dict[str, Any], Mapping[str, str]], Awaitable[None]]


async def open_joins_bucket(js: JetStreamContext) -> KeyValue:
    try:
        return await js.key_value(subjects.KV_CHAIN_JOINS)
    except BucketNotFoundError:
        config = KeyValueConfig(
            bucket=subjects.KV_CHAIN_JOINS, history=1, ttl=JOIN_TTL_SECONDS, storage=StorageType.FILE
        )
        try:
            return await js.create_key_value(config)
        except Exception:
            # Another worker created it between our look-up and create.
            return await js.key_value(subjects.KV_CHAIN_JOINS)


class ChainJoins:
    def __init__(self, kv: KeyValue, publish: Publish, supervisor: TaskSupervisor) -> None:
        self._kv = kv
        self._publish = publish
        self._supervisor = supervisor

    async def contribute(
        self,
        link: ChainLink,
        request_id: str,
        source: tuple[str, str, str],
        tensors: Sequence[Mapping[str, Any]],
        parameters: Mapping[str, Any] | None,
        headers: Mapping[str, str],
    ) -> None:
        key = f"{link.target}.{request_id}"
        share = contribution(link, tensors)
        first = False
        for _ in range(_WRITE_ATTEMPTS):
            try:
                entry = await self._kv.get(key)
                contributions: dict[str, Any] = orjson.loads(entry.value or b"{}")
                revision: int | None = entry.revision
            except KeyNotFoundError:
                contributions, revision = {}, None
            contributions[source_name(source)] = share
            if parameters and _PARAMETERS not in contributions:
                contributions[_PARAMETERS] = dict(parameters)
            try:
                if revision is None:
                    await self._kv.create(key, orjson.dumps(contributions))
                    first = True
                else:
                    await self._kv.update(key, orjson.dumps(contributions), last=revision)
                break
            except KeyWrongLastSequenceError:
                continue  # another worker wrote first: read again
        else:
            log.warning("chain_join_not_written", pipeline=link.target, request_id=request_id)
            return
        request = joined_across(link, contributions, contributions.get(_PARAMETERS), final=False)
        if request is not None:
            await self._publish(link.target, request_id, request, headers)
        elif first and "outer" in (link.join_type, link.triggers_join_type):
            window = (link.join_window_ms or DEFAULT_JOIN_WINDOW_MS) / 1000
            self._supervisor.spawn(
                f"dataflow-outer-join-{key}", self._finish_outer(link, request_id, window, dict(headers))
            )

    async def _finish_outer(
        self, link: ChainLink, request_id: str, window: float, headers: dict[str, str]
    ) -> None:
        await asyncio.sleep(window)
        try:
            entry = await self._kv.get(f"{link.target}.{request_id}")
        except KeyNotFoundError:
            return
        contributions = orjson.loads(entry.value or b"{}")
        request = joined_across(link, contributions, contributions.get(_PARAMETERS), final=True)
        if request is not None:
            await self._publish(link.target, request_id, request, headers)
