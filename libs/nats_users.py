"""The users of the embedded nats-server of `modelplane up`, and its config file.

Design: at each start `up` generates a random password per service user (so a leaked file is
good until the next restart only), writes one credentials file per user (``auth/nats/<user>``,
0600, read by the service through ``MODELPLANE_NATS_CREDS``) and the server's config
(``auth/nats.conf``, 0600: it holds the passwords; the ``auth`` folder is 0700). Placement
agents come and go with the Servers' replicas: each gets its own user when it is launched
(``add`` then a config reload) and loses it when it stops.

The config has an ``authorization`` block with the users and their permissions
(``nats_permissions``) and no ``no_auth_user``: a client without valid credentials is refused.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from modelplane.libs.embedded_nats import SERVER_NAME
from modelplane.libs.nats_credentials import NatsCredentials, write_credentials, write_private
from modelplane.libs.nats_permissions import Permissions


@dataclass(frozen=True, slots=True)
class _User:
    name: str
    password: str = field(repr=False)
    permissions: Permissions


class NatsUsers:
    """Users, passwords and permissions of one embedded server; files under ``auth_dir``."""

    def __init__(self, auth_dir: Path) -> None:
        self.auth_dir = auth_dir
        self.config_file = auth_dir / "nats.conf"
        self._creds_dir = auth_dir / "nats"
        self._users: dict[str, _User] = {}

    def prepare(self) -> None:
        """Create the folders (0700) and forget the credentials of an earlier run."""
        self.auth_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.auth_dir.chmod(0o700)
        self._creds_dir.mkdir(mode=0o700, exist_ok=True)
        self._creds_dir.chmod(0o700)
        for old in self._creds_dir.iterdir():
            if old.is_file():
                old.unlink()

    def add(self, user: str, permissions: Permissions) -> Path:
        """Give ``user`` a fresh password; return its credentials file (config not yet written)."""
        password = secrets.token_urlsafe(32)
        self._users[user] = _User(user, password, permissions)
        path = self.creds_file(user)
        write_credentials(path, user, password)
        return path

    def remove(self, user: str) -> None:
        self._users.pop(user, None)
        self.creds_file(user).unlink(missing_ok=True)

    def __contains__(self, user: object) -> bool:
        return user in self._users

    def creds_file(self, user: str) -> Path:
        return self._creds_dir / user

    def credentials(self, user: str) -> NatsCredentials:
        found = self._users[user]
        return NatsCredentials(user=found.name, password=found.password)

    def write_config(self) -> Path:
        """Write the server's config (JSON, which nats-server reads as its config syntax)."""
        users = [
            {"user": u.name, "password": u.password, "permissions": u.permissions.to_config()}
            for u in self._users.values()
        ]
        config = {"server_name": SERVER_NAME, "authorization": {"users": users}}
        write_private(self.config_file, json.dumps(config, indent=2) + "\n")
        return self.config_file
