"""Typed access to NATS JetStream KV buckets that hold protobuf messages.

Design: every bucket holds one protobuf message type; ``TypedBucket`` hides bytes and the
nats-py exception zoo behind get/put/create/update/delete/watch returning our own errors
(``ConflictError`` on a lost revision race, ``NotFoundError``). Writes that must not lose a
concurrent change pass the revision they read (optimistic concurrency).

A value that does not parse (written by a foreign client, or a future schema) never ends a
watch: it is logged with its key (never its bytes), counted in
``modelplane_kv_undecodable_values_total{bucket}`` and skipped, as ``items()`` skips it; only
``get()`` of that very key fails (``PermanentError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import nats
import nats.errors as nats_errors
import nats.js.errors as js_errors
import structlog
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, KeyValueConfig, StorageType
from nats.js.kv import KeyValue
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from modelplane.libs import subjects
from modelplane.libs.errors import ConflictError, NotFoundError, PermanentError, RetryableError
from modelplane.libs.nats_credentials import load_credentials, redact_url

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=Message)

# Seconds a cancelled watch waits for its half-made consumer, to stop it rather than leak it.
_WATCH_CREATE_TIMEOUT = 5.0
# A snapshot's consumer (items): seconds to wait for each message it already counted, and how
# long the server keeps a consumer its reader abandoned.
_SNAPSHOT_MESSAGE_TIMEOUT = 5.0
_SNAPSHOT_INACTIVE_SECONDS = 60.0


class UndecodableValues(Collector):
    """Counts KV values that did not parse, per bucket, as a Prometheus counter.

    One tally per process (``UNDECODABLE_VALUES``): every TypedBucket counts into it wherever it
    was opened, and each service that serves /metrics registers it in its own registry.
    """

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def count(self, bucket: str) -> None:
        self._counts[bucket] += 1

    def get(self, bucket: str) -> int:
        return self._counts[bucket]

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "modelplane_kv_undecodable_values",
            "KV values skipped because they did not parse as the bucket's message type.",
            labels=["bucket"],
        )
        for bucket, count in sorted(self._counts.items()):
            family.add_metric([bucket], count)
        yield family


UNDECODABLE_VALUES = UndecodableValues()


@dataclass(frozen=True, slots=True)
class Versioned(Generic[M]):
    """A value read from KV with the revision to pass back on update."""

    key: str
    value: M
    revision: int


@dataclass(frozen=True, slots=True)
class Change(Generic[M]):
    """One change seen by a watch: ``value`` is None when the key was deleted."""

    key: str
    value: M | None
    revision: int


class _ConnectionLog:
    """nats-py reports every failed (re)connect attempt; log one line at most every few seconds."""

    def __init__(self, name: str, url: str, every: float = 5.0) -> None:
        self._name = name
        self._url = redact_url(url)
        self._every = every
        self._last = -every
        self._suppressed = 0

    async def error(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            self._suppressed += 1
            return
        log.warning(
            "nats_unreachable",
            client=self._name,
            url=self._url,
            error=str(exc) or repr(exc),
            repeats=self._suppressed,
        )
        self._last, self._suppressed = now, 0

    async def disconnected(self) -> None:
        log.warning("nats_disconnected", client=self._name, url=self._url)

    async def reconnected(self) -> None:
        self._last = -self._every
        log.info("nats_reconnected", client=self._name, url=self._url)


async def connect(url: str, name: str, creds: Path | None = None, **options: Any) -> NATS:
    """Connect to NATS; until the server answers, keep trying (services may start before it).

    ``creds`` is the credentials file of this process (``MODELPLANE_NATS_CREDS``, see
    ``nats_credentials``): its user and password go to nats-py as options, never into the URL,
    and the URL is logged without its password. Failed attempts are logged as one line every
    few seconds rather than nats-py's default traceback per attempt. Callers bound the wait
    themselves (the service runner cancels ``start()`` on SIGTERM).
    """
    if creds is not None:
        options = {**load_credentials(creds).connect_options(), **options}
    events = _ConnectionLog(name, url)
    try:
        nc: NATS = await nats.connect(
            url,
            name=name,
            connect_timeout=2,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            error_cb=events.error,
            disconnected_cb=events.disconnected,
            reconnected_cb=events.reconnected,
            **options,
        )
    except Exception as exc:  # nats-py raises several unrelated types here
        raise RetryableError(f"cannot connect to NATS at {redact_url(url)}: {exc}") from exc
    return nc


async def ensure_buckets(js: JetStreamContext, names: tuple[str, ...] = subjects.ALL_BUCKETS) -> None:
    """Create the KV buckets that do not exist yet (idempotent, safe to race)."""
    for name in names:
        try:
            await js.key_value(name)
        except js_errors.BucketNotFoundError:
            try:
                await js.create_key_value(KeyValueConfig(bucket=name, history=5, storage=StorageType.FILE))
            except js_errors.BadRequestError:
                # Another process created it between our look-up and create.
                await js.key_value(name)


class TypedBucket(Generic[M]):
    """A KV bucket whose values are one protobuf message type."""

    def __init__(self, kv: KeyValue, message_type: type[M]) -> None:
        self._kv = kv
        self._type = message_type
        self.name = kv._name

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str, message_type: type[M]) -> TypedBucket[M]:
        return cls(await js.key_value(bucket), message_type)

    def _decode(self, key: str, raw: bytes | None, revision: int) -> M | None:
        """The value as the bucket's message type, or None (logged and counted) if it does not parse."""
        msg = self._type()
        try:
            msg.ParseFromString(raw or b"")
        except DecodeError:
            # The key and size only: the bytes may hold anything, secrets included.
            log.warning(
                "kv_value_undecodable",
                bucket=self.name,
                key=key,
                revision=revision,
                size=len(raw or b""),
                expected=self._type.DESCRIPTOR.full_name,
            )
            UNDECODABLE_VALUES.count(self.name)
            return None
        return msg

    async def _read(self, key: str) -> Versioned[M] | None:
        """The key's value; NotFoundError if absent, None if it does not parse."""
        try:
            entry = await self._kv.get(key)
        except js_errors.KeyNotFoundError as exc:  # KeyDeletedError is a subclass
            raise NotFoundError(f"{key} not found in {self.name}") from exc
        except js_errors.InvalidKeyError as exc:  # a name no resource can have (from a URL)
            raise NotFoundError(f"{key!r} not found in {self.name} (not a valid key)") from exc
        revision = entry.revision or 0
        value = self._decode(key, entry.value, revision)
        return None if value is None else Versioned(key, value, revision)

    async def get(self, key: str) -> Versioned[M]:
        """The key's value; NotFoundError if absent, PermanentError if it does not parse."""
        found = await self._read(key)
        if found is None:
            raise PermanentError(f"{key} in {self.name} is not a valid {self._type.DESCRIPTOR.name}")
        return found

    async def try_get(self, key: str) -> Versioned[M] | None:
        """The key's value, or None when it is absent or does not parse."""
        try:
            return await self._read(key)
        except NotFoundError:
            return None

    async def put(self, key: str, value: M) -> int:
        return int(await self._kv.put(key, value.SerializeToString()))

    async def create(self, key: str, value: M) -> int:
        """Store a new key; ConflictError if it exists (and is not deleted)."""
        try:
            return int(await self._kv.create(key, value.SerializeToString()))
        except js_errors.KeyWrongLastSequenceError as exc:
            raise ConflictError(f"{key} already exists in {self.name}") from exc

    async def update(self, key: str, value: M, revision: int) -> int:
        """Replace a key only if it is still at ``revision``; ConflictError otherwise."""
        try:
            return int(await self._kv.update(key, value.SerializeToString(), last=revision))
        except js_errors.KeyWrongLastSequenceError as exc:
            raise ConflictError(f"{key} in {self.name} changed since revision {revision}") from exc

    async def delete(self, key: str, revision: int | None = None) -> None:
        try:
            await self._kv.delete(key, last=revision)
        except js_errors.InvalidKeyError as exc:
            raise NotFoundError(f"{key!r} not found in {self.name} (not a valid key)") from exc
        except js_errors.KeyWrongLastSequenceError as exc:
            raise ConflictError(f"{key} in {self.name} changed since revision {revision}") from exc

    async def items(self) -> list[Versioned[M]]:
        """Every live key with its value (a snapshot); values that do not parse are left out.

        Read from an ordered consumer of each key's last message: one consumer and no round
        trip per key. The snapshot's size is counted by the consumer itself (delivered plus
        pending when it was made), not taken from nats-py's "caught up" marker: nats-py sends
        that marker when the server has nothing left to deliver, which can be before the client
        has read what was already delivered (under load, a watch then looked empty)."""
        pre = f"$KV.{self.name}."
        sub = await self._kv._js.subscribe(
            f"{pre}>",
            stream=f"KV_{self.name}",
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            inactive_threshold=_SNAPSHOT_INACTIVE_SECONDS,
        )
        try:
            info = await sub.consumer_info()
            total = (info.num_pending or 0) + ((info.delivered.consumer_seq or 0) if info.delivered else 0)
            latest: dict[str, tuple[bytes, int]] = {}
            for _ in range(total):
                try:
                    msg = await sub.next_msg(timeout=_SNAPSHOT_MESSAGE_TIMEOUT)
                except nats_errors.TimeoutError as exc:
                    raise RetryableError(f"reading {self.name} timed out; try again") from exc
                key = msg.subject[len(pre) :]
                operation = (msg.headers or {}).get("KV-Operation")
                if operation in ("DEL", "PURGE"):
                    latest.pop(key, None)
                else:
                    latest[key] = (msg.data, msg.metadata.sequence.stream)
        finally:
            with contextlib.suppress(nats_errors.Error):
                await sub.unsubscribe()
        out: list[Versioned[M]] = []
        for key, (raw, revision) in latest.items():
            value = self._decode(key, raw, revision)
            if value is not None:
                out.append(Versioned(key, value, revision))
        return out

    async def watch(self, keys: str = ">") -> AsyncGenerator[Change[M] | None, None]:
        """Current values first, then ``None`` once caught up, then every change as it happens."""
        # nats-py starts the consumer's heartbeat and flow-control tasks while it creates the
        # watch; cancelled half-way, it would leave them running. Creation is shielded, and a
        # watch whose caller went away meanwhile is stopped once it exists.
        creating = asyncio.create_task(self._kv.watch(keys), name=f"kv-watch-{self.name}")
        try:
            watcher = await asyncio.shield(creating)
        except asyncio.CancelledError:
            # Stop what the creation started. A second cancellation must not cut this short
            # (a caller awaiting this task, cancelled itself, passes its cancellation on): it
            # would cancel the creation half-way and leave nats-py's tasks behind. The clean-up
            # is bounded by _WATCH_CREATE_TIMEOUT.
            cleanup = asyncio.create_task(
                _abandon_watch(self.name, creating), name=f"kv-watch-abandon-{self.name}"
            )
            while not cleanup.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(cleanup)
            raise
        try:
            # Iterate the watcher itself: its updates(timeout=...) goes through asyncio.wait_for,
            # which on Python 3.11 can swallow a cancellation when an item is already queued.
            async for entry in watcher:
                if entry is None:
                    yield None
                elif entry.operation in ("DEL", "PURGE"):
                    yield Change(entry.key, None, entry.revision or 0)
                else:
                    revision = entry.revision or 0
                    value = self._decode(entry.key, entry.value, revision)
                    if value is not None:  # a value that does not parse is skipped, not fatal
                        yield Change(entry.key, value, revision)
        finally:
            await _stop_watcher(watcher)


async def _abandon_watch(bucket: str, creating: asyncio.Task[KeyValue.KeyWatcher]) -> None:
    """Wait (bounded) for a watch nobody wants any more to exist, then stop it."""
    try:
        await _stop_watcher(await asyncio.wait_for(creating, _WATCH_CREATE_TIMEOUT))
    except Exception as exc:  # NATS gone: nothing was started, or nothing can be stopped
        log.debug("kv_watch_abandoned", bucket=bucket, error=repr(exc))


async def _stop_watcher(watcher: KeyValue.KeyWatcher) -> None:
    """Stop a KV watcher, also when its connection is already closed (e.g. at a hard shutdown)
    and when this stop is itself cancelled half-way (a shutdown cancelling a task that was
    already finishing).

    nats-py's ``stop()`` cancels the consumer's heartbeat and flow-control tasks only after its
    unsubscribe succeeded: when it raises (closed connection) or is interrupted, they would
    linger for up to two idle-heartbeat intervals (10 s). They are cancelled here in any case
    (cancelling a finished task does nothing).
    """
    try:
        await watcher.stop()  # type: ignore[no-untyped-call]
    except Exception as exc:  # the connection is closed: nothing left to unsubscribe
        log.debug("kv_watch_stop_failed", error=repr(exc))
    finally:
        jsi = getattr(getattr(getattr(watcher, "_sub", None), "_sub", None), "_jsi", None)
        for attribute in ("_hbtask", "_fctask"):
            task = getattr(jsi, attribute, None)
            if isinstance(task, asyncio.Task):
                task.cancel()


async def disconnect(nc: NATS | None, *, drain: bool = False, timeout: float = 5.0) -> None:
    """Close a NATS connection in whatever state it is (idempotent).

    Shutdown must finish even when NATS is already gone (a crashed server, or a hard stop of
    `up`): errors here are logged as one line, never raised.
    """
    if nc is None or nc.is_closed:
        return
    try:
        if drain and nc.is_connected:
            await asyncio.wait_for(nc.drain(), timeout)
        else:
            await nc.close()
    except Exception as exc:  # nats-py raises connection errors of several types here
        log.warning("nats_close_unclean", error=str(exc) or repr(exc))
        with contextlib.suppress(Exception):
            await nc.close()
