"""NATS credentials of one process: read from the file ``MODELPLANE_NATS_CREDS`` names.

Two formats, told apart by their content:

- a standard NATS ``.creds`` file (a user JWT and its nkey seed, as ``nsc`` writes it), passed
  to nats-py as ``user_credentials``;
- a modelplane credentials file (what `modelplane up` writes under ``<state dir>/auth/nats/``):
  lines starting with ``#`` are comments, and the first other line is ``user:password`` (the
  password is everything after the first ``:``). The user's inbox prefix is then
  ``_INBOX.<user>``, the one the embedded server's permissions allow it
  (``nats_permissions``).

The file must not be readable by other users (group access is tolerated, for Kubernetes secret
volumes). Passwords never go into argv, URLs or logs: they are passed to nats-py as options,
and every URL that is logged goes through ``redact_url`` first.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from modelplane.libs import subjects
from modelplane.libs.errors import InvalidError

_JWT_MARKER = "-----BEGIN NATS USER JWT-----"


@dataclass(frozen=True, slots=True)
class NatsCredentials:
    """Who a process is on NATS; ``connect_options()`` are the nats-py options for it."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    creds_file: Path | None = None

    def connect_options(self) -> dict[str, Any]:
        if self.creds_file is not None:
            return {"user_credentials": str(self.creds_file)}
        if self.user is None:
            return {}
        return {
            "user": self.user,
            "password": self.password,
            "inbox_prefix": subjects.user_inbox_prefix(self.user),
        }


def load_credentials(path: Path) -> NatsCredentials:
    """Read a credentials file; InvalidError (naming the file and the reason) when unusable."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidError(f"MODELPLANE_NATS_CREDS: cannot read {path}: {exc.strerror}") from exc
    if mode & stat.S_IRWXO:
        raise InvalidError(
            f"MODELPLANE_NATS_CREDS: {path} is accessible to other users (mode {stat.S_IMODE(mode):04o}); "
            "chmod 600 it"
        )
    if _JWT_MARKER in text:
        return NatsCredentials(creds_file=path)
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            break
        if "." in user or any(c.isspace() for c in user):
            raise InvalidError(f"MODELPLANE_NATS_CREDS: {path}: the user name must have no dots or spaces")
        return NatsCredentials(user=user, password=password)
    raise InvalidError(
        f"MODELPLANE_NATS_CREDS: {path} holds neither a NATS .creds file nor a 'user:password' line"
    )


def write_credentials(path: Path, user: str, password: str) -> None:
    """Write a modelplane credentials file, mode 0600 from its creation (replaced atomically)."""
    body = f"# NATS credentials of user {user!r}, written by `modelplane up`\n{user}:{password}\n"
    write_private(path, body)


def write_private(path: Path, body: str) -> None:
    """Write ``body`` to ``path`` with mode 0600, never visible with a wider mode or half-written."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):  # left over by a crash mid-write
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(body)
    os.replace(tmp, path)


def redact_url(url: str) -> str:
    """The URL without a password, for logs and banners: ``nats://user:***@host:4222``.

    Lists of URLs (``nats://a:1,nats://b:2``) are redacted one by one.
    """
    if "," in url:
        return ",".join(redact_url(part) for part in url.split(","))
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return "<unparsable url>"
    if "@" not in netloc:
        return url
    userinfo, _, hostport = netloc.rpartition("@")
    user = userinfo.split(":", 1)[0] if ":" in userinfo else "***"
    safe = f"{user}:***@{hostport}" if ":" in userinfo else f"***@{hostport}"
    return urlunsplit(parts._replace(netloc=safe))
