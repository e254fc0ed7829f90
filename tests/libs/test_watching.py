"""watch_buckets against a real nats-server: replay before return, then changes, then errors."""

from __future__ import annotations

import asyncio

import pytest
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.errors import RetryableError
from modelplane.libs.store import TypedBucket
from modelplane.libs.tasks import TaskSupervisor
from modelplane.libs.watching import BucketWatch, watch_buckets
from modelplane.proto import resources_pb2 as pb
from modelplane.proto import state_pb2

Seen = tuple[str, str, str | None]


def _recorder(seen: asyncio.Queue[Seen]) -> tuple[BucketWatch[pb.Model], BucketWatch[state_pb2.ReplicaInfo]]:
    """Watches of two buckets that record (bucket, key, name or None) for every change."""

    def on_model(key: str, msg: pb.Model | None) -> None:
        seen.put_nowait((subjects.KV_MODELS, key, msg.meta.name if msg is not None else None))

    def on_replica(key: str, msg: state_pb2.ReplicaInfo | None) -> None:
        seen.put_nowait((subjects.KV_REPLICAS, key, msg.server if msg is not None else None))

    return (
        BucketWatch(subjects.KV_MODELS, pb.Model, on_model),
        BucketWatch(subjects.KV_REPLICAS, state_pb2.ReplicaInfo, on_replica),
    )


async def _two_filled_buckets(
    js: JetStreamContext,
) -> tuple[TypedBucket[pb.Model], TypedBucket[state_pb2.ReplicaInfo]]:
    """KV_MODELS holding "iris" and KV_REPLICAS holding "mlserver.0"."""
    models = await TypedBucket.open(js, subjects.KV_MODELS, pb.Model)
    replicas = await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
    await models.put("iris", pb.Model(meta=pb.ObjectMeta(name="iris")))
    await replicas.put("mlserver.0", state_pb2.ReplicaInfo(server="mlserver"))
    return models, replicas


def _drain(queue: asyncio.Queue[Seen]) -> set[Seen]:
    out: set[Seen] = set()
    while not queue.empty():
        out.add(queue.get_nowait())
    return out


async def test_returns_after_every_bucket_replayed_then_follows_changes(js: JetStreamContext) -> None:
    """Current keys of every bucket reach the callbacks before the call returns; later changes follow."""
    models, _ = await _two_filled_buckets(js)
    seen: asyncio.Queue[Seen] = asyncio.Queue()
    supervisor = TaskSupervisor("test")
    try:
        await watch_buckets(js, supervisor, _recorder(seen), 10.0, "test")
        assert _drain(seen) == {
            (subjects.KV_MODELS, "iris", "iris"),
            (subjects.KV_REPLICAS, "mlserver.0", "mlserver"),
        }
        assert supervisor.running == 2

        await models.delete("iris")
        assert await asyncio.wait_for(seen.get(), 10) == (subjects.KV_MODELS, "iris", None)
    finally:
        await supervisor.close()
    assert supervisor.running == 0


async def test_a_failing_callback_does_not_stop_the_watch(js: JetStreamContext) -> None:
    """A callback that raises for one key is logged; the next change is still delivered."""
    models = await TypedBucket.open(js, subjects.KV_MODELS, pb.Model)
    seen: asyncio.Queue[str] = asyncio.Queue()

    def on_model(key: str, msg: pb.Model | None) -> None:
        if key == "bad":
            raise ValueError("cannot read this one")
        seen.put_nowait(key)

    await models.put("bad", pb.Model())
    supervisor = TaskSupervisor("test")
    try:
        await watch_buckets(
            js, supervisor, [BucketWatch(subjects.KV_MODELS, pb.Model, on_model)], 10.0, "test"
        )
        await models.put("good", pb.Model())
        assert await asyncio.wait_for(seen.get(), 10) == "good"
        assert supervisor.running == 1
    finally:
        await supervisor.close()


async def test_garbage_in_a_bucket_does_not_stop_the_watch(js: JetStreamContext) -> None:
    """Bytes that are no protobuf, before and after the replay, are skipped; later changes arrive."""
    models = await TypedBucket.open(js, subjects.KV_MODELS, pb.Model)
    raw = await js.key_value(subjects.KV_MODELS)
    seen: asyncio.Queue[str] = asyncio.Queue()
    await raw.put("garbage-before", b"\xff\xff\xff\xff")
    supervisor = TaskSupervisor("test")
    try:
        await watch_buckets(
            js,
            supervisor,
            [BucketWatch(subjects.KV_MODELS, pb.Model, lambda key, _: seen.put_nowait(key))],
            10.0,
            "test",
        )
        await raw.put("garbage-after", b"\xff\xff\xff\xff")
        await models.put("good", pb.Model())
        assert await asyncio.wait_for(seen.get(), 10) == "good"
        assert seen.empty()
        assert supervisor.running == 1
    finally:
        await supervisor.close()


async def test_replay_not_finished_in_time_is_retryable(js: JetStreamContext) -> None:
    """A replay not finished within the timeout raises RetryableError; the watches stay supervised."""
    models, replicas = await _two_filled_buckets(js)
    seen: asyncio.Queue[Seen] = asyncio.Queue()
    supervisor = TaskSupervisor("test")
    try:
        with pytest.raises(RetryableError, match="status service could not read the KV buckets in time"):
            await watch_buckets(js, supervisor, _recorder(seen), 0.0, "status service")
        # The watches go on after the caller gave up: they finish the replay, then follow changes
        # (and stop when the supervisor is closed).
        replayed = {(await asyncio.wait_for(seen.get(), 10))[1] for _ in range(2)}
        assert replayed == {"iris", "mlserver.0"}
        await models.put("wine", pb.Model(meta=pb.ObjectMeta(name="wine")))
        await replicas.put("mlserver.1", state_pb2.ReplicaInfo(server="mlserver"))
        followed = {(await asyncio.wait_for(seen.get(), 10))[1] for _ in range(2)}
        assert followed == {"wine", "mlserver.1"}
    finally:
        await supervisor.close()
