"""Principals and tokens for tests that talk to the api with auth on (it always is)."""

from __future__ import annotations

from modelplane.libs.auth.bearer import authorization
from modelplane.libs.auth.tokens import Principal, TokenStore, generate_token

# What the handler is given for an admin caller in handler-level tests.
ADMIN = Principal("test-admin", "admin")
DEPLOYER = Principal("test-deployer", "deployer")
VIEWER = Principal("test-viewer", "viewer")
INFERENCE = Principal("test-inference", "inference")


async def make_token(store: TokenStore, role: str, name: str | None = None) -> str:
    """A new token for ``role`` stored through ``store`` (name defaults to the role)."""
    token = generate_token()
    await store.ensure(name or f"test-{role}", role, token)
    return token


def bearer(token: str) -> dict[str, str]:
    """HTTP headers carrying ``token``."""
    return {"Authorization": authorization(token)}


def grpc_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """gRPC call metadata carrying ``token``."""
    return (("authorization", authorization(token)),)
