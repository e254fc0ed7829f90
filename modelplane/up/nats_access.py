"""Which NATS credentials each process of `modelplane up` gets.

With the embedded server (the default) every service and every placement agent is its own NATS
user with its own permissions (``libs/nats_permissions.py``): the users are generated at each
start, and an agent's user exists only while that agent runs (added, then the server reloads its
config, before the agent starts). With an external server (``--nats-url``), every process uses
the one credentials file given to `up` (``MODELPLANE_NATS_CREDS``), if any: its users and
permissions are the operator's.

A child learns its credentials from ``MODELPLANE_NATS_CREDS`` (a path to a 0600 file), never
from argv or a URL.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, Protocol

from nats.aio.client import Client as NATS

from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.errors import RetryableError
from modelplane.libs.nats_permissions import SERVICE_USERS, agent_permissions, agent_user, service_permissions
from modelplane.libs.nats_users import NatsUsers

CREDS_ENV = "MODELPLANE_NATS_CREDS"

# Seconds a reloaded server may take to accept a new agent's user.
_RELOAD_TIMEOUT = 10.0
_RELOAD_POLL = 0.05


class NatsAccess(Protocol):
    def creds_file(self, user: str) -> Path | None:
        """Credentials of a service user (``up`` included), None for an anonymous connection."""

    async def agent_env(self, server: str, index: int) -> dict[str, str]:
        """Environment giving one placement agent its credentials (its user exists once this
        returns)."""

    async def forget_agent(self, server: str, index: int) -> None:
        """The agent stopped: its user may go."""


def service_env(access: NatsAccess, user: str) -> dict[str, str]:
    path = access.creds_file(user)
    return {CREDS_ENV: str(path)} if path is not None else {}


class SharedCredentials:
    """An external server: every process connects with the same credentials file (or none)."""

    def __init__(self, creds: Path | None) -> None:
        self._creds = creds

    def creds_file(self, user: str) -> Path | None:
        return self._creds

    async def agent_env(self, server: str, index: int) -> dict[str, str]:
        return {CREDS_ENV: str(self._creds)} if self._creds is not None else {}

    async def forget_agent(self, server: str, index: int) -> None:
        return None


class EmbeddedUsers:
    """The embedded server: one user per service and per running agent, with permissions."""

    def __init__(self, auth_dir: Path) -> None:
        self.users = NatsUsers(auth_dir)
        self._nats: EmbeddedNats | None = None
        self._lock = asyncio.Lock()

    def write_service_users(self) -> Path:
        """Generate every service user; return the server config file to start nats-server with."""
        self.users.prepare()
        for user in SERVICE_USERS:
            self.users.add(user, service_permissions(user))
        return self.users.write_config()

    def attach(self, server: EmbeddedNats) -> None:
        """The started server: agents' users are added by reloading its config."""
        self._nats = server

    def creds_file(self, user: str) -> Path | None:
        return self.users.creds_file(user)

    async def agent_env(self, server: str, index: int) -> dict[str, str]:
        user = agent_user(server, index)
        async with self._lock:
            path = self.users.add(user, agent_permissions(server, index))
            self.users.write_config()
            options = self.users.credentials(user).connect_options()
            await self._reload_until(user, options, accepted=True)
        return {CREDS_ENV: str(path)}

    async def forget_agent(self, server: str, index: int) -> None:
        user = agent_user(server, index)
        async with self._lock:
            options = self.users.credentials(user).connect_options() if user in self.users else None
            self.users.remove(user)
            self.users.write_config()
            if options is not None and self._nats is not None and self._nats.pid is not None:
                # Once this returns, the stopped agent's password no longer logs in.
                await self._reload_until(user, options, accepted=False)

    async def _reload_until(self, user: str, options: dict[str, Any], *, accepted: bool) -> None:
        """Reload the server's config, then wait until it accepts ``user`` (or refuses it, when
        ``accepted`` is False): nats-server applies a reload asynchronously."""
        assert self._nats is not None, "attach() the started server first"
        self._nats.reload()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _RELOAD_TIMEOUT
        while loop.time() < deadline:
            if await _logs_in(self._nats.url, options) == accepted:
                return
            await asyncio.sleep(_RELOAD_POLL)
        outcome = "accept" if accepted else "refuse"
        raise RetryableError(
            f"nats-server did not {outcome} the user {user} within {_RELOAD_TIMEOUT}s of a reload"
        )


async def _logs_in(url: str, options: dict[str, Any]) -> bool:
    """Whether the server accepts a login with these connect options."""
    probe = NATS()
    try:
        await probe.connect(
            url,
            name="modelplane-up-probe",
            connect_timeout=1,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            error_cb=_ignore_error,
            **options,
        )
    except Exception:  # nats-py raises several types for a refused login
        return False
    finally:
        # Also after a refusal: nats-py leaves the socket open otherwise.
        with contextlib.suppress(Exception):
            await probe.close()
    return True


async def _ignore_error(exc: Exception) -> None:
    """The probe's refusals are expected until the reload lands."""
