"""TypedBucket against a real nats-server: revisions, conflicts, watches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import pytest
import structlog
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, generate_latest

from modelplane.libs import subjects
from modelplane.libs.errors import ConflictError, NotFoundError, PermanentError
from modelplane.libs.store import UNDECODABLE_VALUES, TypedBucket
from modelplane.proto import resources_pb2 as pb


async def test_create_then_update_with_stale_revision_conflicts(js: JetStreamContext) -> None:
    """An update carrying an old revision is refused, so a concurrent write is never lost."""
    bucket = await TypedBucket.open(js, subjects.KV_MODELS, pb.Model)
    rev = await bucket.create("iris", pb.Model(meta=pb.ObjectMeta(name="iris", generation=1)))
    await bucket.update("iris", pb.Model(meta=pb.ObjectMeta(name="iris", generation=2)), rev)
    with pytest.raises(ConflictError):
        await bucket.update("iris", pb.Model(meta=pb.ObjectMeta(name="iris", generation=3)), rev)
    with pytest.raises(ConflictError):
        await bucket.create("iris", pb.Model())
    assert (await bucket.get("iris")).value.meta.generation == 2


async def test_get_of_deleted_key_is_not_found(js: JetStreamContext) -> None:
    """A deleted key reads as NotFoundError and disappears from items()."""
    bucket = await TypedBucket.open(js, subjects.KV_MODELS, pb.Model)
    await bucket.put("a", pb.Model(meta=pb.ObjectMeta(name="a")))
    await bucket.put("b", pb.Model(meta=pb.ObjectMeta(name="b")))
    await bucket.delete("a")
    with pytest.raises(NotFoundError):
        await bucket.get("a")
    assert [v.key for v in await bucket.items()] == ["b"]


async def test_watch_yields_current_values_marker_then_changes(js: JetStreamContext) -> None:
    """A watch replays current values, marks the end of the replay, then follows changes."""
    bucket = await TypedBucket.open(js, subjects.KV_MODELS, pb.Model)
    await bucket.put("a", pb.Model(meta=pb.ObjectMeta(name="a")))
    stream = bucket.watch()
    assert isinstance(stream, AsyncGenerator)  # so that it can be closed
    first = await anext(stream)
    assert first is not None
    assert first.key == "a"
    assert await anext(stream) is None
    await bucket.delete("a")
    change = await anext(stream)
    assert change is not None
    assert change.key == "a"
    assert change.value is None
    await stream.aclose()


async def test_a_watch_consumer_stops_promptly_when_cancelled(js: JetStreamContext) -> None:
    """Cancelling a task that follows a watch ends it at once, even with updates queued."""
    bucket = await TypedBucket.open(js, subjects.KV_MODELS, pb.Model)
    for i in range(50):
        await bucket.put(f"m{i}", pb.Model(meta=pb.ObjectMeta(name=f"m{i}")))

    async def follow() -> None:
        async for _ in bucket.watch():
            await asyncio.sleep(0)

    for _ in range(20):
        task = asyncio.create_task(follow())
        await asyncio.sleep(0.01)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert task in done, "watch consumer ignored its cancellation"


async def test_a_watch_cancelled_while_it_is_created_leaves_nothing_running(js: JetStreamContext) -> None:
    """A watch cancelled before nats-py finished creating it is stopped, not leaked (its
    consumer's heartbeat tasks would outlive the test and fail the leaked-task check)."""
    bucket = await TypedBucket.open(js, subjects.KV_MODELS, pb.Model)
    await bucket.put("m", pb.Model(meta=pb.ObjectMeta(name="m")))

    async def follow() -> None:
        async for _ in bucket.watch():
            pass

    for delay in (0, 0, 0.001, 0.002, 0.005):
        task = asyncio.create_task(follow())
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    before = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    names = sorted(t.get_name() for t in before)
    assert not [n for n in names if n.startswith("kv-watch-")], names


_GARBAGE = b"\x0a\xff\xff\xff\x0fsecret-ish bytes that are no protobuf"


async def test_a_value_that_does_not_parse_is_skipped_and_the_watch_goes_on(js: JetStreamContext) -> None:
    """Garbage under a key (in the replay and live) is logged with its key, counted and skipped."""
    bucket = await TypedBucket.open(js, subjects.KV_MODELS, pb.Model)
    raw = await js.key_value(subjects.KV_MODELS)
    before = UNDECODABLE_VALUES.get(subjects.KV_MODELS)
    await raw.put("bad", _GARBAGE)
    await bucket.put("a", pb.Model(meta=pb.ObjectMeta(name="a")))
    stream = bucket.watch()
    with structlog.testing.capture_logs() as logs:
        first = await anext(stream)
        assert first is not None
        assert first.key == "a"
        assert await anext(stream) is None
        await raw.put("worse", _GARBAGE)
        await bucket.put("b", pb.Model(meta=pb.ObjectMeta(name="b")))
        change = await anext(stream)
        assert change is not None
        assert change.value is not None
        assert (change.key, change.value.meta.name) == ("b", "b")
    await stream.aclose()
    assert UNDECODABLE_VALUES.get(subjects.KV_MODELS) == before + 2
    skipped = [e for e in logs if e["event"] == "kv_value_undecodable"]
    assert [e["key"] for e in skipped] == ["bad", "worse"]
    assert all(e["bucket"] == subjects.KV_MODELS for e in skipped)
    assert "secret-ish" not in repr(logs)


async def test_items_skip_a_value_that_does_not_parse_and_get_names_it(js: JetStreamContext) -> None:
    """items() leaves garbage out; get() of that key is a PermanentError naming key and bucket."""
    bucket = await TypedBucket.open(js, subjects.KV_MODELS, pb.Model)
    await (await js.key_value(subjects.KV_MODELS)).put("bad", _GARBAGE)
    await bucket.put("a", pb.Model(meta=pb.ObjectMeta(name="a")))
    assert [v.key for v in await bucket.items()] == ["a"]
    assert await bucket.try_get("bad") is None
    with pytest.raises(PermanentError, match=f"bad in {subjects.KV_MODELS}"):
        await bucket.get("bad")


def test_the_undecodable_counter_is_exposed_to_prometheus() -> None:
    """The tally is a Prometheus counter labelled by bucket."""
    registry = CollectorRegistry()
    registry.register(UNDECODABLE_VALUES)
    UNDECODABLE_VALUES.count("some_bucket")
    text = generate_latest(registry).decode()
    assert 'modelplane_kv_undecodable_values_total{bucket="some_bucket"}' in text


async def test_a_watch_cancelled_twice_while_it_is_made_leaves_no_nats_task(js: JetStreamContext) -> None:
    """A caller cancelled again while its half-made watch is being stopped (a shutdown after a
    cancelled stream) still stops it: nats-py's heartbeat task does not outlive it (the leak check
    of tests/conftest.py fails the test otherwise)."""
    bucket = await TypedBucket.open(js, subjects.KV_MODELS, pb.Model)

    async def follow() -> None:
        async for _ in bucket.watch():
            pass

    def heartbeat_running() -> bool:
        return any("activity_check" in repr(t.get_coro()) for t in asyncio.all_tasks() if not t.done())

    follower = asyncio.create_task(follow())
    async with asyncio.timeout(10):
        # nats-py offers no event for "the consumer's tasks are started": look each loop turn.
        while not heartbeat_running():  # noqa: ASYNC110
            await asyncio.sleep(0)
    follower.cancel()
    await asyncio.sleep(0)
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await follower
    for _ in range(3):  # a cancelled task ends at its next turn
        await asyncio.sleep(0)
    assert not heartbeat_running()


async def test_items_is_every_live_key_with_its_latest_value_each_time(js: JetStreamContext) -> None:
    """A snapshot holds each live key once, at its latest revision, without deleted ones, however
    soon it is asked after the writes (it counts what its consumer must read instead of trusting
    nats-py's caught-up marker, which could come before the values: an empty list under load)."""
    bucket = await TypedBucket.open(js, subjects.KV_MODELS, pb.Model)
    for i in range(60):
        await bucket.put(f"m{i}", pb.Model(meta=pb.ObjectMeta(name=f"m{i}", generation=1)))
    latest = await bucket.put("m7", pb.Model(meta=pb.ObjectMeta(name="m7", generation=2)))
    await bucket.delete("m3")
    for _ in range(25):
        items = {item.key: item for item in await bucket.items()}
        assert sorted(items) == sorted(f"m{i}" for i in range(60) if i != 3)
        assert items["m7"].value.meta.generation == 2
        assert items["m7"].revision == latest
    await bucket.delete("m7")
    assert "m7" not in {item.key for item in await bucket.items()}
