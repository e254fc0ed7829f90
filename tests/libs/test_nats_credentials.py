"""MODELPLANE_NATS_CREDS: the credentials file formats, their checks, and URLs without passwords."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.errors import InvalidError
from modelplane.libs.nats_credentials import load_credentials, redact_url, write_credentials
from modelplane.libs.nats_permissions import Permissions
from modelplane.libs.nats_users import NatsUsers
from modelplane.libs.settings import CommonSettings
from modelplane.libs.store import _ConnectionLog, connect, disconnect

CREDS_FILE = """\
-----BEGIN NATS USER JWT-----
eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln
------END NATS USER JWT------

-----BEGIN USER NKEY SEED-----
SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4
------END USER NKEY SEED------
"""


def _private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_a_user_password_line_gives_user_password_and_own_inbox(tmp_path: Path) -> None:
    """`user:password` (after comments) logs in as that user with the inbox prefix _INBOX.<user>."""
    path = _private(tmp_path / "creds", "# the gateway's\n\ngateway:pa:ss\n")
    options = load_credentials(path).connect_options()
    assert options == {"user": "gateway", "password": "pa:ss", "inbox_prefix": "_INBOX.gateway"}


def test_a_nats_creds_file_is_passed_to_nats_py(tmp_path: Path) -> None:
    """A standard .creds file (JWT and nkey seed) goes to nats-py as user_credentials."""
    path = _private(tmp_path / "user.creds", CREDS_FILE)
    assert load_credentials(path).connect_options() == {"user_credentials": str(path)}


def test_a_file_other_users_can_read_is_refused(tmp_path: Path) -> None:
    """Credentials readable by everyone are refused, naming the setting and the fix."""
    path = tmp_path / "creds"
    path.write_text("api:secret\n")
    path.chmod(0o644)
    with pytest.raises(
        InvalidError, match=r"MODELPLANE_NATS_CREDS: .* accessible to other users .*chmod 600"
    ):
        load_credentials(path)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "no-colon-here\n", ":password\n", "user:\n"])
def test_a_file_without_credentials_is_refused(tmp_path: Path, text: str) -> None:
    path = _private(tmp_path / "creds", text)
    with pytest.raises(InvalidError, match=r"MODELPLANE_NATS_CREDS: .* neither a NATS \.creds file nor"):
        load_credentials(path)


def test_a_missing_file_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidError, match=r"MODELPLANE_NATS_CREDS: cannot read .*missing"):
        load_credentials(tmp_path / "missing")


def test_the_password_is_not_in_the_credentials_repr(tmp_path: Path) -> None:
    path = _private(tmp_path / "creds", "api:s3cret-value\n")
    assert "s3cret-value" not in repr(load_credentials(path))


def test_written_credentials_are_0600_in_a_0700_folder(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "nats" / "api"
    write_credentials(path, "api", "secret")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert load_credentials(path).connect_options()["password"] == "secret"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://ops:s3cret@nats.example:4222", "nats://ops:***@nats.example:4222"),
        ("nats://s3cret@nats.example:4222", "nats://***@nats.example:4222"),
        ("tls://a:s3cret@one:4222,tls://b:s3cret@two:4222", "tls://a:***@one:4222,tls://b:***@two:4222"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_the_connection_log_never_shows_the_password() -> None:
    """nats_unreachable / nats_disconnected lines carry the URL without its password."""
    events = _ConnectionLog("api", "nats://ops:s3cret@127.0.0.1:1")
    with structlog.testing.capture_logs() as logs:
        await events.error(OSError("connection refused"))
        await events.disconnected()
    assert logs
    assert all("s3cret" not in repr(entry) for entry in logs)
    assert logs[0]["url"] == "nats://ops:***@127.0.0.1:1"


@pytest.fixture
async def external(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedNats, NatsUsers]]:
    """A NATS server run by someone else: one user 'ops' who may use its inbox and the events."""
    users = NatsUsers(tmp_path / "auth")
    users.prepare()
    users.add(
        "ops",
        Permissions(publish=(subjects.ALL_EVENTS,), subscribe=(subjects.ALL_EVENTS, "_INBOX.ops.>")),
    )
    server = EmbeddedNats(
        store_dir=tmp_path / "nats",
        port=free_port(),
        log_file=tmp_path / "nats.log",
        config_file=users.write_config(),
    )
    await server.start()
    try:
        yield server, users
    finally:
        await server.stop()


async def test_an_external_server_with_a_credentials_file(
    external: tuple[EmbeddedNats, NatsUsers], monkeypatch: pytest.MonkeyPatch
) -> None:
    """MODELPLANE_NATS_URL plus MODELPLANE_NATS_CREDS: a service connects and round-trips."""
    server, users = external
    monkeypatch.setenv("MODELPLANE_NATS_URL", server.url)
    monkeypatch.setenv("MODELPLANE_NATS_CREDS", str(users.creds_file("ops")))
    settings = CommonSettings()
    nc = await connect(settings.nats_url, name="ops", creds=settings.nats_creds)
    try:
        sub = await nc.subscribe(subjects.resource_event("Model", "iris"))
        await nc.publish(subjects.resource_event("Model", "iris"), b"changed")
        assert (await sub.next_msg(timeout=10)).data == b"changed"
    finally:
        await disconnect(nc)
