"""Who may call the gateway: ``MODELPLANE_GATEWAY_AUTH=off|required``.

Off (local ``up``'s default, as Seldon, KServe and KubeAI ship) lets every caller in. Required
asks each request for a bearer token (HTTP ``Authorization: Bearer <token>``, gRPC metadata
``authorization``) whose role is ``inference`` or ``admin``: no token or an unknown one is
401 / UNAUTHENTICATED, a known token of another role (``viewer``, ``deployer``) is 403 /
PERMISSION_DENIED. Tokens are checked against the api's token bucket through a
``TokenVerifier`` (the KV-backed store answers from memory); a token is never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from modelplane.libs.auth.bearer import bearer_token
from modelplane.libs.auth.roles import ADMIN, INFERENCE
from modelplane.libs.auth.tokens import ImmediateTokenVerifier, Principal, TokenVerifier
from modelplane.libs.errors import PermissionDeniedError, UnauthenticatedError

AUTHORIZATION: Final = "authorization"
# Roles that may run inference on the gateway.
INFERENCE_ROLES: Final = frozenset({INFERENCE, ADMIN})


class Access:
    """The gateway's auth policy; ``verifier`` None means auth is off."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self._verifier = verifier

    @property
    def required(self) -> bool:
        return self._verifier is not None

    def precheck(self, headers: Mapping[str, str]) -> Principal | None:
        """401/403 from the head alone when auth is required, so a refused request's body is
        never read: no bearer token at all, or (with a verifier that answers from memory, as
        the KV-backed store does) an unknown token or one of another role. Returns the caller
        when that settled it (``check`` need not run again), None otherwise."""
        if self._verifier is None:
            return None
        token = _token(headers)
        if isinstance(self._verifier, ImmediateTokenVerifier):
            return _allowed(self._verifier.verify_now(token))
        return None

    async def check(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller's principal; raises 401/403 errors when auth is required and not met."""
        if self._verifier is None:
            return None
        return _allowed(await self._verifier.verify(_token(headers)))


def _token(headers: Mapping[str, str]) -> str:
    token = bearer_token(headers.get(AUTHORIZATION))
    if token is None:
        raise UnauthenticatedError("a bearer token is required (Authorization: Bearer <token>)")
    return token


def _allowed(principal: Principal | None) -> Principal:
    if principal is None:
        raise UnauthenticatedError("the bearer token is not valid")
    if principal.role not in INFERENCE_ROLES:
        raise PermissionDeniedError(
            f"token {principal.name} has role {principal.role}; inference needs role inference or admin"
        )
    return principal
