"""TypedBucket against a real nats-server: revisions, conflicts, watches."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.errors import ConflictError, NotFoundError
from modelplane.libs.proto import resources_pb2 as pb
from modelplane.libs.store import TypedBucket


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
