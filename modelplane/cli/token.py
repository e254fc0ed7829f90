"""`modelplane token create --role ROLE [--name N] | list | revoke NAME` (the admin role only).

A created token is printed once, alone on stdout (so ``TOKEN=$(modelplane token create ...)``
works); the api keeps only its hash, so it cannot be shown again.
"""

from __future__ import annotations

import click

from modelplane.cli.client import ApiClient, api_option
from modelplane.cli.render import table
from modelplane.libs.auth.roles import ROLES


@click.group()
def token() -> None:
    """Create, list and revoke api tokens (admin only)."""


@token.command("create")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the token may do.")
@click.option("--name", default="", help="A name for the token [default: <role>-<6 hex>].")
@api_option
def create_token(role: str, name: str, api_address: str) -> None:
    """Make a token and print it (this once)."""
    with ApiClient(api_address) as api:
        reply = api.create_token(role, name)
    click.echo(f"token/{reply.name} created (role {reply.role}); it is shown only now:", err=True)
    click.echo(reply.token)


@token.command("list")
@api_option
def list_tokens(api_address: str) -> None:
    """List tokens: name, role and creation time (never the tokens)."""
    with ApiClient(api_address) as api:
        tokens = api.list_tokens().tokens
    click.echo(table(["NAME", "ROLE", "CREATED"], [[t.name, t.role, t.created] for t in tokens]))


@token.command("revoke")
@click.argument("name")
@api_option
def revoke_token(name: str, api_address: str) -> None:
    """Revoke a token: it stops working at once."""
    with ApiClient(api_address) as api:
        api.revoke_token(name)
    click.echo(f"token/{name} revoked")
