"""Protobuf payloads of NATS messages, read the same way by every subscriber.

A message that does not parse is logged (with its subject and the type expected) and skipped:
one bad publisher must not end a subscription, and the callers' loops go on with the next one.

A message a JetStream consumer delivered is skipped the same way on the core subscriptions of
commands and reports (``peer_only``): NATS checks who may *publish* to a subject, but a user
allowed to create a consumer on a stream it writes (a KV bucket) chooses the consumer's
delivery subject freely, and the server then delivers that stream's content there (e.g. into an
agent's command subject). Such a message always carries a ``$JS.ACK.`` reply subject; what a
peer sends never does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=Message)

# Reply subjects of messages a JetStream consumer delivers.
_JETSTREAM_DELIVERY = "$JS.ACK."


def delivered_by_jetstream(msg: Msg) -> bool:
    """True for a message a JetStream consumer pushed, not one a peer published."""
    return bool(msg.reply) and msg.reply.startswith(_JETSTREAM_DELIVERY)


def peer_only(callback: Callable[[Msg], Awaitable[None]]) -> Callable[[Msg], Awaitable[None]]:
    """``callback`` for a core subscription, skipping (logged) what a JetStream consumer pushed."""

    async def on_message(msg: Msg) -> None:
        if delivered_by_jetstream(msg):
            log.warning("message_from_a_stream_skipped", subject=msg.subject)
            return
        await callback(msg)

    return on_message


def decoded(message_type: type[M], msg: Msg) -> M | None:
    """``msg``'s payload as ``message_type``, or None (logged) when it does not parse or a
    JetStream consumer, not a peer, delivered it."""
    if delivered_by_jetstream(msg):
        log.warning("message_from_a_stream_skipped", subject=msg.subject)
        return None
    message = message_type()
    try:
        message.ParseFromString(msg.data)
    except DecodeError:
        log.warning("message_undecodable", subject=msg.subject, expected=message_type.DESCRIPTOR.full_name)
        return None
    return message
