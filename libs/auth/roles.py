"""The roles a token carries. What each may do is the api's decision (``services/api/authz``);
the gateway accepts ``inference`` and ``admin``."""

from __future__ import annotations

from typing import Final, Literal, TypeGuard

from modelplane.libs.errors import InvalidError

Role = Literal["admin", "deployer", "viewer", "inference"]

ADMIN: Final[Role] = "admin"
# Deploys models, pipelines, experiments and graphs; never anything that runs host processes.
DEPLOYER: Final[Role] = "deployer"
# Reads, lists, watches and inspects; changes nothing.
VIEWER: Final[Role] = "viewer"
# Calls models through the gateway; nothing on the control API.
INFERENCE: Final[Role] = "inference"

ROLES: Final[tuple[Role, ...]] = (ADMIN, DEPLOYER, VIEWER, INFERENCE)


def is_role(value: str) -> TypeGuard[Role]:
    return value in ROLES


def parse_role(value: str, field: str = "role") -> Role:
    """The role named ``value``; InvalidError naming ``field`` otherwise."""
    if not is_role(value):
        raise InvalidError(f"unknown role {value!r}; roles: {', '.join(ROLES)}", field=field)
    return value
