"""Protobuf payloads of NATS messages, read the same way by every subscriber.

A message that does not parse is logged (with its subject and the type expected) and skipped:
one bad publisher must not end a subscription, and the callers' loops go on with the next one.
"""

from __future__ import annotations

from typing import TypeVar

import structlog
from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=Message)


def decoded(message_type: type[M], msg: Msg) -> M | None:
    """``msg``'s payload as ``message_type``, or None (logged) when it does not parse."""
    message = message_type()
    try:
        message.ParseFromString(msg.data)
    except DecodeError:
        log.warning("message_undecodable", subject=msg.subject, expected=message_type.DESCRIPTOR.full_name)
        return None
    return message
