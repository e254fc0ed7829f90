"""Protobuf payloads of NATS messages: parsed, or None for a payload that is not the type."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy, KeyValueConfig

from modelplane.libs.nats_messages import decoded, peer_only
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


async def test_what_a_stream_pushes_into_a_command_subject_is_skipped(nc: NATS) -> None:
    """A consumer made to deliver a stream's content into a subject does not pass as a peer:
    peer_only and decoded skip it, and what a peer publishes next still arrives."""
    js = nc.jetstream()
    kv = await js.create_key_value(KeyValueConfig(bucket="forged"))
    await kv.put("cmd", events_pb2.ModelWake(model="forged").SerializeToString())
    received: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_command(msg: Msg) -> None:
        received.put_nowait(msg)

    await nc.subscribe("test.agent.load", cb=peer_only(on_command))
    raw = await nc.subscribe("test.agent.load")
    await js.add_consumer(
        "KV_forged", ConsumerConfig(deliver_subject="test.agent.load", deliver_policy=DeliverPolicy.ALL)
    )
    pushed = await raw.next_msg(timeout=10)
    assert decoded(events_pb2.ModelWake, pushed) is None

    await nc.publish("test.agent.load", events_pb2.ModelWake(model="iris").SerializeToString())
    first = await received.get()
    assert decoded(events_pb2.ModelWake, first) == events_pb2.ModelWake(model="iris")
    await raw.unsubscribe()
