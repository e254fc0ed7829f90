"""The embedded nats-server of `up` admits only its users, each limited to what it needs.

Every test runs a real nats-server with the config `up` generates (``EmbeddedUsers``) and real
clients connected with the credentials files `up` hands its children.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.nats_credentials import load_credentials
from modelplane.libs.store import connect, disconnect, ensure_buckets
from modelplane.up.nats_access import CREDS_ENV, EmbeddedUsers


@dataclass
class Secured:
    server: EmbeddedNats
    users: EmbeddedUsers
    log_file: Path


@dataclass
class Connected:
    nc: NATS
    # Permission errors the server sent this client, lower-cased ('... for publish to "x"').
    denied: asyncio.Queue[str]


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    users = EmbeddedUsers(tmp_path / "auth")
    log_file = tmp_path / "nats.log"
    server = EmbeddedNats(
        store_dir=tmp_path / "nats",
        port=free_port(),
        log_file=log_file,
        config_file=users.write_service_users(),
    )
    await server.start()
    users.attach(server)
    try:
        yield Secured(server, users, log_file)
    finally:
        await server.stop()


@pytest.fixture
async def clients() -> AsyncIterator[list[NATS]]:
    opened: list[NATS] = []
    try:
        yield opened
    finally:
        for nc in opened:
            await disconnect(nc)


async def _connect_file(secured: Secured, creds: Path, clients: list[NATS]) -> Connected:
    denied: asyncio.Queue[str] = asyncio.Queue()

    async def on_error(exc: Exception) -> None:
        # nats-py lower-cases the server's "Permissions Violation for Publish to ..."
        if "permissions violation" in str(exc).lower():
            denied.put_nowait(str(exc).lower())

    nc = await nats.connect(
        secured.server.url,
        allow_reconnect=False,
        error_cb=on_error,
        **load_credentials(creds).connect_options(),
    )
    clients.append(nc)
    return Connected(nc, denied)


async def _as(secured: Secured, user: str, clients: list[NATS]) -> Connected:
    path = secured.users.users.creds_file(user)
    return await _connect_file(secured, path, clients)


async def _as_agent(secured: Secured, server: str, index: int, clients: list[NATS]) -> Connected:
    env = await secured.users.agent_env(server, index)
    return await _connect_file(secured, Path(env[CREDS_ENV]), clients)


async def _quiet(exc: Exception) -> None:
    """Refused connections are what these tests expect: nothing to log."""


async def _denial(client: Connected) -> str:
    """The next permission error the server sent ``client`` (bounded only to fail fast)."""
    return await asyncio.wait_for(client.denied.get(), 10)


async def _try_connect(url: str, **options: Any) -> str | None:
    """Connect and close again; the error when the server refused (None when it accepted)."""
    nc = NATS()
    try:
        await nc.connect(url, allow_reconnect=False, max_reconnect_attempts=0, error_cb=_quiet, **options)
    except nats.errors.Error as exc:
        return str(exc)
    finally:
        # Also after a refusal: nats-py leaves the socket open otherwise.
        await nc.close()
    return None


async def test_an_anonymous_client_is_refused(secured: Secured) -> None:
    """A client without credentials cannot connect at all."""
    refused = await _try_connect(secured.server.url)
    assert refused is not None
    assert "Authorization Violation" in refused


async def test_a_wrong_password_is_refused(secured: Secured) -> None:
    """Knowing a user name is not enough."""
    refused = await _try_connect(secured.server.url, user="api", password="not-the-password")
    assert refused is not None
    assert "Authorization Violation" in refused


async def test_the_gateway_cannot_write_desired_state(secured: Secured, clients: list[NATS]) -> None:
    """The gateway's put into the models bucket is denied and the value stays as the api wrote it."""
    up = await _as(secured, "up", clients)
    await ensure_buckets(up.nc.jetstream())
    api = await _as(secured, "api", clients)
    models = await api.nc.jetstream().key_value(subjects.KV_MODELS)
    await models.put("iris", b"written by the api")

    gateway = await _as(secured, "gateway", clients)
    # A KV put is a publish to $KV.<bucket>.<key> (what kv.put sends; the gateway may not even
    # open the bucket through the JS API).
    await gateway.nc.publish(f"$KV.{subjects.KV_MODELS}.iris", b"forged by the gateway")
    await gateway.nc.flush()
    assert f'Publish to "$KV.{subjects.KV_MODELS}.iris"'.lower() in await _denial(gateway)
    with pytest.raises(nats.errors.TimeoutError):
        await gateway.nc.jetstream(timeout=1).key_value(subjects.KV_MODELS)
    assert "stream.info" in await _denial(gateway)

    assert (await models.get("iris")).value == b"written by the api"


async def test_an_agent_cannot_publish_another_agents_command(secured: Secured, clients: list[NATS]) -> None:
    """Agent 1 cannot send agent 0 a load command; agent 0 only ever sees the scheduler's."""
    agent0 = await _as_agent(secured, "mlserver", 0, clients)
    agent1 = await _as_agent(secured, "mlserver", 1, clients)
    scheduler = await _as(secured, "scheduler", clients)
    received: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_load(msg: Msg) -> None:
        received.put_nowait(msg)
        await msg.respond(b"loaded")

    await agent0.nc.subscribe(subjects.agent_command("mlserver", 0, "load"), cb=on_load)
    await agent0.nc.flush()

    await agent1.nc.publish(subjects.agent_command("mlserver", 0, "load"), b"forged by agent 1")
    await agent1.nc.flush()
    assert 'publish to "modelplane.agent.mlserver.0.load"' in await _denial(agent1)

    reply = await scheduler.nc.request(subjects.agent_command("mlserver", 0, "load"), b"from the scheduler")
    assert reply.data == b"loaded"
    first = received.get_nowait()
    assert first.data == b"from the scheduler"
    assert received.empty()


async def test_an_agent_cannot_listen_to_another_agents_commands(
    secured: Secured, clients: list[NATS]
) -> None:
    """Agent 1's subscription to agent 0's subjects is refused."""
    agent1 = await _as_agent(secured, "mlserver", 1, clients)
    await agent1.nc.subscribe(subjects.agent_command("mlserver", 0, "load"))
    await agent1.nc.flush()
    assert 'Subscription to "modelplane.agent.mlserver.0.load"'.lower() in await _denial(agent1)


async def test_an_agent_cannot_answer_into_another_users_inbox(secured: Secured, clients: list[NATS]) -> None:
    """Without a request to answer, an agent may publish into no inbox (allow_responses only)."""
    agent1 = await _as_agent(secured, "mlserver", 1, clients)
    inbox = f"{subjects.user_inbox_prefix('scheduler')}.forged"
    await agent1.nc.publish(inbox, b"a forged reply")
    await agent1.nc.flush()
    assert f'Publish to "{inbox}"'.lower() in await _denial(agent1)


async def test_the_gateway_cannot_subscribe_to_another_users_inbox(
    secured: Secured, clients: list[NATS]
) -> None:
    """The gateway's subscription to the scheduler's inbox is refused and sees no reply."""
    agent0 = await _as_agent(secured, "mlserver", 0, clients)
    scheduler = await _as(secured, "scheduler", clients)
    gateway = await _as(secured, "gateway", clients)

    async def on_load(msg: Msg) -> None:
        await msg.respond(b"loaded")

    await agent0.nc.subscribe(subjects.agent_command("mlserver", 0, "load"), cb=on_load)
    await agent0.nc.flush()
    snooped: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_snooped(msg: Msg) -> None:
        snooped.put_nowait(msg)

    await gateway.nc.subscribe(f"{subjects.user_inbox_prefix('scheduler')}.>", cb=on_snooped)
    await gateway.nc.flush()
    assert 'Subscription to "_INBOX.scheduler.>"'.lower() in await _denial(gateway)

    reply = await scheduler.nc.request(subjects.agent_command("mlserver", 0, "load"), b"load iris")
    assert reply.data == b"loaded"
    await gateway.nc.flush()
    assert snooped.empty()


async def test_dataflow_answers_go_only_to_the_gateways_inbox(secured: Secured, clients: list[NATS]) -> None:
    """A dataflow worker answers into the gateway's inbox prefix and no other."""
    dataflow = await _as(secured, "dataflow", clients)
    gateway = await _as(secured, "gateway", clients)
    answers: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_answer(msg: Msg) -> None:
        answers.put_nowait(msg)

    inbox = gateway.nc.new_inbox()
    assert inbox.startswith(f"{subjects.user_inbox_prefix('gateway')}.")
    await gateway.nc.subscribe(f"{inbox}.*", cb=on_answer)
    await gateway.nc.flush()

    other = f"{subjects.user_inbox_prefix('api')}.x.1"
    await dataflow.nc.publish(other, b"misdirected")
    await dataflow.nc.publish(f"{inbox}.1", b"answer")
    await dataflow.nc.flush()
    assert f'Publish to "{other}"'.lower() in await _denial(dataflow)
    assert (await answers.get()).data == b"answer"


async def test_an_agents_user_goes_when_the_agent_stops(secured: Secured) -> None:
    """A stopped agent's credentials no longer connect, and its file is gone."""
    env = await secured.users.agent_env("mlserver", 0)
    creds = Path(env[CREDS_ENV])
    options = load_credentials(creds).connect_options()
    assert await _try_connect(secured.server.url, **options) is None
    await secured.users.forget_agent("mlserver", 0)
    assert not await asyncio.to_thread(creds.exists)
    refused = await _try_connect(secured.server.url, **options)
    assert refused is not None
    assert "Authorization Violation" in refused


async def test_each_service_connects_with_its_credentials_file(secured: Secured) -> None:
    """store.connect with the file `up` gives a service logs it in with its own inbox prefix."""
    for user in ("up", "api", "scheduler", "status", "storage", "gateway", "dataflow", "autoscaler"):
        nc = await connect(secured.server.url, name=user, creds=secured.users.users.creds_file(user))
        try:
            assert nc.new_inbox().startswith(f"_INBOX.{user}.")
            await nc.flush()
        finally:
            await disconnect(nc)


async def test_files_are_private(secured: Secured) -> None:
    """The auth folder is 0700; the server config and every credentials file are 0600."""
    auth = secured.users.users.auth_dir
    assert auth.stat().st_mode & 0o777 == 0o700
    files = [secured.users.users.config_file, *(auth / "nats").iterdir()]
    assert len(files) > 8
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600, path
