"""A workers' consumer made by an older `up` (delivering to an anonymous inbox) is replaced, so
the workers, now the NATS user ``dataflow``, receive requests again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modelplane.libs import dataflow_stream, subjects
from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.store import connect, disconnect
from modelplane.services.dataflow.nats_adapter import replace_foreign_consumer
from modelplane.up.nats_access import EmbeddedUsers


@pytest.fixture
async def upgraded(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedNats, EmbeddedUsers]]:
    """State written by an anonymous older `up`, then the server restarted with users."""
    port = free_port()
    old = EmbeddedNats(store_dir=tmp_path / "nats", port=port, log_file=tmp_path / "old.log")
    await old.start()
    try:
        nc = await connect(old.url, name="old-worker")
        try:
            js = nc.jetstream()
            await dataflow_stream.ensure_stream(js)
            config = dataflow_stream.workers_consumer(30, 3, 100)
            config.deliver_subject = nc.new_inbox()  # "_INBOX.<nuid>": no user prefix then
            config.deliver_group = subjects.DATAFLOW_WORKERS_CONSUMER
            await js.add_consumer(subjects.DATAFLOW_STREAM, config)
        finally:
            await disconnect(nc)
    finally:
        await old.stop()
    users = EmbeddedUsers(tmp_path / "auth")
    server = EmbeddedNats(
        store_dir=tmp_path / "nats",
        port=port,
        log_file=tmp_path / "nats.log",
        config_file=users.write_service_users(),
    )
    await server.start()
    users.attach(server)
    try:
        yield server, users
    finally:
        await server.stop()


async def test_a_consumer_delivering_to_an_anonymous_inbox_is_replaced(
    upgraded: tuple[EmbeddedNats, EmbeddedUsers],
) -> None:
    """The dataflow user deletes it; a consumer made afterwards delivers into its own inbox."""
    server, users = upgraded
    nc = await connect(server.url, name="dataflow", creds=users.users.creds_file("dataflow"))
    try:
        js = nc.jetstream()
        stream, durable = subjects.DATAFLOW_STREAM, subjects.DATAFLOW_WORKERS_CONSUMER
        assert not (await js.consumer_info(stream, durable)).config.deliver_subject.startswith(
            "_INBOX.dataflow."
        )
        await replace_foreign_consumer(nc, js)
        sub = await js.subscribe(
            subjects.ALL_DATAFLOW_REQUESTS,
            queue=durable,
            durable=durable,
            stream=stream,
            config=dataflow_stream.workers_consumer(30, 3, 100),
            manual_ack=True,
        )
        try:
            info = await js.consumer_info(stream, durable)
            assert (info.config.deliver_subject or "").startswith("_INBOX.dataflow.")
            # Idempotent: a consumer of its own is kept.
            await replace_foreign_consumer(nc, js)
            assert (
                await js.consumer_info(stream, durable)
            ).config.deliver_subject == info.config.deliver_subject
        finally:
            await sub.unsubscribe()
    finally:
        await disconnect(nc)
