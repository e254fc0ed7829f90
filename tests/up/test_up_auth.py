"""`up`'s credentials: a private state dir, a lasting admin token, fresh internal tokens."""

from __future__ import annotations

import stat
from pathlib import Path

from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.auth.files import admin_token_path
from modelplane.libs.auth.tokens import Principal, TokenStore
from modelplane.up.auth import bootstrap


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_bootstrap_makes_private_files_and_stores_hashes(tmp_path: Path, js: JetStreamContext) -> None:
    """State dir and auth/ are 0700, admin.token 0600; KV has every token's hash, not the token."""
    state = tmp_path / "state"
    creds = await bootstrap(js, state)
    assert mode(state) == 0o700
    assert mode(state / "auth") == 0o700
    token_file = admin_token_path(state)
    assert mode(token_file) == 0o600
    assert token_file.read_text().strip() == creds.admin_token

    store = await TokenStore.open(js)
    await store.start()
    try:
        assert await store.verify(creds.admin_token) == Principal("admin", "admin")
        assert await store.verify(creds.up_token) == Principal("up", "admin")
        autoscaler = creds.env_for("autoscaler")["MODELPLANE_AUTOSCALER_API_TOKEN"]
        assert await store.verify(autoscaler) == Principal("up-autoscaler", "admin")
        dataflow = creds.env_for("dataflow")["MODELPLANE_DATAFLOW_GATEWAY_TOKEN"]
        assert await store.verify(dataflow) == Principal("up-dataflow", "inference")
    finally:
        await store.close()
    # Only the autoscaler and the dataflow workers receive a token, each its own.
    assert creds.env_for("gateway") == {}
    assert creds.env_for("placement") == {}
    kv = await js.key_value(subjects.KV_TOKENS)
    for key in ("admin", "up", "up-autoscaler", "up-dataflow"):
        raw = (await kv.get(key)).value or b""
        assert creds.admin_token.encode() not in raw
        assert autoscaler.encode() not in raw


async def test_restart_keeps_the_admin_token_and_renews_the_others(
    tmp_path: Path, js: JetStreamContext
) -> None:
    """A second start reuses admin.token (the CLI keeps working) and replaces internal tokens."""
    state = tmp_path / "state"
    first = await bootstrap(js, state)
    state.chmod(0o755)  # loosened by hand: the next start tightens it again
    second = await bootstrap(js, state)
    assert second.admin_token == first.admin_token
    assert second.up_token != first.up_token
    assert mode(state) == 0o700
    store = await TokenStore.open(js)
    await store.start()
    try:
        assert await store.verify(first.up_token) is None
        old = first.env_for("autoscaler")["MODELPLANE_AUTOSCALER_API_TOKEN"]
        assert await store.verify(old) is None
        assert await store.verify(second.admin_token) == Principal("admin", "admin")
    finally:
        await store.close()
