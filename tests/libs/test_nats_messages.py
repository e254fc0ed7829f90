"""Protobuf payloads of NATS messages: parsed, or None for a payload that is not the type."""

from __future__ import annotations

from nats.aio.client import Client as NATS

from modelplane.libs.nats_messages import decoded
from modelplane.proto import events_pb2


async def test_a_payload_parses_and_garbage_is_none(nc: NATS) -> None:
    """A ModelWake comes back as one; bytes that are no protobuf give None (logged, not raised)."""
    sub = await nc.subscribe("test.decoded")
    await nc.publish("test.decoded", events_pb2.ModelWake(model="iris", held=2).SerializeToString())
    await nc.publish("test.decoded", b"\xff\xff\xff")
    good = decoded(events_pb2.ModelWake, await sub.next_msg(timeout=5))
    bad = decoded(events_pb2.ModelWake, await sub.next_msg(timeout=5))
    await sub.unsubscribe()
    assert good == events_pb2.ModelWake(model="iris", held=2)
    assert bad is None
