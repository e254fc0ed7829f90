"""Reading a bearer token from an ``Authorization`` header (HTTP) or metadata value (gRPC)."""

from __future__ import annotations

# The header/metadata key (gRPC metadata keys are lowercase).
AUTHORIZATION = "authorization"
_SCHEME = "bearer"


def bearer_token(header: str | None) -> str | None:
    """The token of ``Bearer <token>`` (scheme in any case), or None when absent or malformed."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != _SCHEME or not token or " " in token:
        return None
    return token


def authorization(token: str) -> str:
    """The header value that carries ``token``."""
    return f"Bearer {token}"
