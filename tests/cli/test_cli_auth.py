"""The CLI's credentials: --token, MODELPLANE_TOKEN or `up`'s admin token in the state dir;
`token create|list|revoke`; refusals as one line with the documented exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from modelplane.libs.auth.files import admin_token_path, write_private
from modelplane.libs.embedded_nats import free_port
from modelplane.services.api.app import App
from tests.helpers.auth import ADMIN

from .harness import Cli

EVIL = {
    "apiVersion": "modelplane.io/v1alpha1",
    "kind": "ServerConfig",
    "metadata": {"name": "evil"},
    "spec": {"runtime": "custom", "command": ["sh", "-c", "id"]},
}


async def test_cli_finds_the_admin_token_in_the_state_dir(
    api_app: App, admin_token: str, tmp_path: Path
) -> None:
    """With no --token and no MODELPLANE_TOKEN, the CLI uses <state dir>/auth/admin.token."""
    state = tmp_path / "state"
    write_private(admin_token_path(state), admin_token + "\n")
    cli = Cli(api_app.grpc_address)  # no token of its own
    found = await cli("model", "list", MODELPLANE_STATE_DIR=str(state))
    assert found.exit_code == 0, found.output
    missing = await cli("model", "list", MODELPLANE_STATE_DIR=str(tmp_path / "empty"))
    assert missing.exit_code == 1
    assert len(missing.stderr.strip().splitlines()) == 1
    assert "--token" in missing.stderr
    assert "Traceback" not in missing.output


async def test_explicit_token_wins(run_cli: Cli, api_app: App) -> None:
    """--token beats MODELPLANE_TOKEN (which beats the state dir)."""
    _, viewer = await api_app.handler.create_token(ADMIN, "viewer", "v")
    refused = await run_cli("token", "list", "--token", viewer)
    assert refused.exit_code == 1
    assert "permission denied" in refused.stderr
    allowed = await run_cli("token", "list")  # MODELPLANE_TOKEN: the admin token
    assert allowed.exit_code == 0


async def test_token_create_list_revoke(run_cli: Cli) -> None:
    """create prints the token alone on stdout, once; list never shows it; revoke ends it."""
    created = await run_cli("token", "create", "--role", "viewer", "--name", "ci")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("mpt_")
    assert len(token) == 47
    listed = await run_cli("token", "list")
    assert "ci" in listed.stdout
    assert "viewer" in listed.stdout
    assert token not in listed.output
    assert (await run_cli("model", "list", "--token", token)).exit_code == 0
    revoked = await run_cli("token", "revoke", "ci")
    assert (revoked.exit_code, revoked.stdout) == (0, "token/ci revoked\n")
    after = await run_cli("model", "list", "--token", token)
    assert after.exit_code == 1
    assert "refused the token" in after.stderr
    bad_role = await run_cli("token", "create", "--role", "root")
    assert bad_role.exit_code == 2


async def test_refusals_are_one_line_with_exit_codes(run_cli: Cli, api_app: App, tmp_path: Path) -> None:
    """A viewer's apply is exit 1; a deployer's forbidden field is exit 2 naming it."""
    manifest = tmp_path / "evil.json"
    manifest.write_text(json.dumps(EVIL))
    _, viewer = await api_app.handler.create_token(ADMIN, "viewer", "v")
    _, deployer = await api_app.handler.create_token(ADMIN, "deployer", "d")
    as_viewer = await run_cli("apply", "-f", str(manifest), "--token", viewer)
    assert as_viewer.exit_code == 1
    assert "permission denied" in as_viewer.stderr
    as_deployer = await run_cli("apply", "-f", str(manifest), "--token", deployer)
    assert as_deployer.exit_code == 2
    assert "spec.command: the deployer role may not set it" in as_deployer.stderr
    assert len(as_deployer.stderr.strip().splitlines()) == 1


async def test_gateway_calls_carry_the_token(run_cli: Cli, admin_token: str) -> None:
    """`model metadata` sends the CLI's token to a local gateway (for MODELPLANE_GATEWAY_AUTH)."""
    seen: list[str | None] = []

    async def metadata(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"name": request.match_info["name"]})

    app = web.Application()
    app.router.add_get("/v2/models/{name}", metadata)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        done = await run_cli("model", "metadata", "iris", "--gateway", f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
    assert done.exit_code == 0, done.output
    assert seen == [f"Bearer {admin_token}"]
