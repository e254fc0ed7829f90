"""Credentials `modelplane up` makes for the api: the admin token the CLI uses, and one token per
internal caller, regenerated at every start.

Design: the state dir is 0700 and ``<state dir>/auth/`` too. The admin token is made once and
kept in ``auth/admin.token`` (0600): the CLI finds it there, so the README's commands work
unchanged, and it survives restarts. Internal callers (the autoscaler's Scale calls, `up`'s own
defaults, the dataflow workers calling the gateway) get fresh tokens at each start, handed to
their process only, through its environment: a token that leaked from a previous run stops
working at the next one. Every hash goes into KV through ``TokenStore.ensure`` before the api
starts, so the api knows them from its first request. Tokens never appear in argv or logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import structlog
from nats.js import JetStreamContext

from modelplane.libs.auth.files import admin_token_path, auth_dir, private_dir, read_private, write_private
from modelplane.libs.auth.roles import ADMIN, INFERENCE, Role
from modelplane.libs.auth.tokens import TOKEN_PREFIX, TokenStore, generate_token

log = structlog.get_logger(__name__)

ADMIN_TOKEN_NAME: Final = "admin"
# Internal callers: token name, role, and the process and variable that receive it. The
# autoscaler scales Servers as well as Models, which only the admin role may do.
_INTERNAL: Final[tuple[tuple[str, Role, str, str], ...]] = (
    ("up-autoscaler", ADMIN, "autoscaler", "MODELPLANE_AUTOSCALER_API_TOKEN"),
    ("up-dataflow", INFERENCE, "dataflow", "MODELPLANE_DATAFLOW_GATEWAY_TOKEN"),
)
UP_TOKEN_NAME: Final = "up"


@dataclass(frozen=True)
class UpCredentials:
    """The tokens of one `up` run."""

    admin_token: str
    # `up`'s own token (the default ServerConfigs and Server it applies).
    up_token: str
    # service name -> the environment variables only that service receives.
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)

    def env_for(self, service: str) -> dict[str, str]:
        return dict(self.service_env.get(service, {}))


async def bootstrap(js: JetStreamContext, state_dir: Path) -> UpCredentials:
    """Make the state dir private, keep (or make) the admin token, make the internal tokens, and
    store every hash in KV."""
    private_dir(state_dir)
    private_dir(auth_dir(state_dir))
    admin_token = _admin_token(state_dir)
    store = await TokenStore.open(js)
    # Also when the file existed: the KV may be new (an external NATS, a wiped store).
    await store.ensure(ADMIN_TOKEN_NAME, ADMIN, admin_token)
    up_token = generate_token()
    await store.ensure(UP_TOKEN_NAME, ADMIN, up_token)
    service_env: dict[str, dict[str, str]] = {}
    for name, role, service, variable in _INTERNAL:
        token = generate_token()
        await store.ensure(name, role, token)
        service_env.setdefault(service, {})[variable] = token
    log.info("tokens_ready", admin_file=str(admin_token_path(state_dir)))
    return UpCredentials(admin_token, up_token, service_env)


def _admin_token(state_dir: Path) -> str:
    path = admin_token_path(state_dir)
    existing = read_private(path)
    if existing is not None and existing.startswith(TOKEN_PREFIX):
        path.chmod(0o600)
        return existing
    token = generate_token()
    write_private(path, token + "\n")
    log.info("admin_token_created", file=str(path))
    return token
