"""`modelplane up`'s NATS admits no anonymous client, and the gateway's user cannot write state."""

from __future__ import annotations

import asyncio

import nats
import nats.errors
from nats.aio.client import Client as NATS

from modelplane.libs import subjects
from modelplane.libs.nats_credentials import load_credentials
from tests.e2e.stack import UpProcess

# The gateway's forged write below is refused, and the server logs that refusal.
ALLOWED_NATS_VIOLATIONS = (
    f'"$G/user:gateway" - Publish Violation - Subject "$KV.{subjects.KV_SERVERS}.mlserver"',
)


async def _quiet(exc: Exception) -> None:
    """Refusals are what this test expects."""


async def _refusal(url: str) -> str | None:
    nc = NATS()
    try:
        await nc.connect(url, allow_reconnect=False, max_reconnect_attempts=0, error_cb=_quiet)
    except nats.errors.Error as exc:
        return str(exc)
    finally:
        await nc.close()
    return None


async def _forge_server_as_gateway(stack: UpProcess) -> tuple[bytes, bytes, str]:
    """The Server 'mlserver' before and after the gateway's forged put, and the server's error."""
    auth = stack.state_dir / "auth" / "nats"
    url = f"nats://127.0.0.1:{stack.ports.nats}"
    up = await nats.connect(url, **load_credentials(auth / "up").connect_options())
    denied: asyncio.Queue[str] = asyncio.Queue()

    async def on_error(exc: Exception) -> None:
        denied.put_nowait(str(exc))

    gateway = await nats.connect(
        url, error_cb=on_error, **load_credentials(auth / "gateway").connect_options()
    )
    try:
        servers = await up.jetstream().key_value(subjects.KV_SERVERS)
        before = (await servers.get("mlserver")).value or b""
        await gateway.publish(f"$KV.{subjects.KV_SERVERS}.mlserver", b"replicas: 300")
        await gateway.flush()
        error = await asyncio.wait_for(denied.get(), 30)
        after = (await servers.get("mlserver")).value or b""
        return before, after, error
    finally:
        await gateway.close()
        await up.close()


def test_nats_refuses_anonymous_clients_and_the_gateways_writes(stack: UpProcess) -> None:
    """No anonymous NATS client; the gateway's user cannot change a Server; files are private."""
    refused = asyncio.run(_refusal(f"nats://127.0.0.1:{stack.ports.nats}"))
    assert refused is not None
    assert "Authorization Violation" in refused

    before, after, error = asyncio.run(_forge_server_as_gateway(stack))
    assert "permissions violation" in error.lower()
    assert after == before != b"replicas: 300"

    auth = stack.state_dir / "auth"
    assert auth.stat().st_mode & 0o777 == 0o700
    files = [auth / "nats.conf", *(auth / "nats").iterdir()]
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600, path
    # No password of any NATS user shows in what `up` and its services logged.
    log = stack.log_path.read_text(errors="replace")
    for path in (auth / "nats").iterdir():
        password = load_credentials(path).connect_options()["password"]
        assert password not in log, path.name
