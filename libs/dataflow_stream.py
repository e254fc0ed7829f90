"""The JetStream stream that carries pipeline and inference-graph traffic, and its wire headers.

Design: one stream (``subjects.DATAFLOW_STREAM``) holds every dataflow subject, so a request, its
answer and each step's record share one retention policy and one place to inspect. Requests are
published with a message id, so a caller retrying a publish (or a pipeline chained from another
one whose worker crashed and ran again) never makes two requests; answers likewise, so an answer
sent twice by two deliveries of one request is stored once. Messages stay after they are
acknowledged (limits retention, bounded by age): ``pipeline inspect`` reads them.

Both the gateway (it publishes requests and waits for answers) and the dataflow workers (they
consume requests) declare the stream; declaring is idempotent.
"""

from __future__ import annotations

from typing import Final

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from modelplane.libs import subjects

# ---- headers of dataflow messages ----------------------------------------------------------
# JetStream's de-duplication key.
MSG_ID: Final = "Nats-Msg-Id"
# On answers: the HTTP status of the answer (200, or the error's status).
STATUS: Final = "Modelplane-Status"
# On requests: UNIX time (seconds, float) after which nobody waits for the answer any more.
DEADLINE: Final = "Modelplane-Deadline"
# On requests: W3C trace context of the caller.
TRACEPARENT: Final = "traceparent"
# On requests: a core NATS subject the caller also wants the answer on (the gateway's own inbox,
# so it needs no subscription per request); the answer still goes to the stream too.
REPLY_TO: Final = "Modelplane-Reply-To"
# On answers and step records: the request's own id (the V2 "id" field), when it had one.
REQUEST_ID: Final = "Modelplane-Request-Id"

# How long JetStream remembers message ids: a redelivered request answered again within this
# window is stored once. Longer than ack wait x deliveries of a request.
DUPLICATE_WINDOW_SECONDS: Final = 600.0


def request_msg_id(kind: str, name: str, request_id: str) -> str:
    return f"in.{kind}.{name}.{request_id}"


def answer_msg_id(kind: str, name: str, request_id: str) -> str:
    return f"out.{kind}.{name}.{request_id}"


def stream_config(max_age_seconds: float, max_bytes: int) -> StreamConfig:
    return StreamConfig(
        name=subjects.DATAFLOW_STREAM,
        subjects=[subjects.ALL_DATAFLOW],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=max_age_seconds,
        max_bytes=max_bytes,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )


async def ensure_stream(
    js: JetStreamContext, max_age_seconds: float = 3600.0, max_bytes: int = 1 << 30
) -> None:
    """Create the dataflow stream, or bring an existing one to this configuration."""
    config = stream_config(max_age_seconds, max_bytes)
    try:
        await js.stream_info(subjects.DATAFLOW_STREAM)
    except NotFoundError:
        await js.add_stream(config)
        return
    await js.update_stream(config)


def workers_consumer(ack_wait_seconds: float, max_deliver: int, max_ack_pending: int) -> ConsumerConfig:
    """The durable pull consumer every dataflow worker shares: each request goes to one worker;
    one not acknowledged within ``ack_wait_seconds`` (its worker died) goes to another."""
    return ConsumerConfig(
        durable_name=subjects.DATAFLOW_WORKERS_CONSUMER,
        filter_subject=subjects.ALL_DATAFLOW_REQUESTS,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_seconds,
        max_deliver=max_deliver,
        max_ack_pending=max_ack_pending,
        # A request accepted before the first worker started is still taken (the consumer is
        # created once; afterwards it resumes where it stands).
        deliver_policy=DeliverPolicy.ALL,
    )
