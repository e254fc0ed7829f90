"""Credentials for fetchers: a model's ``spec.secretName`` -> environment-style names and values.

Design: a secret is what Seldon's storage initializer received as ``envFrom: secretRef``: a flat
set of environment names (AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS, AZURE_CLIENT_SECRET,
the legacy AZ_* names, HF_TOKEN, ...). Names pass through untouched; each fetcher picks (and
maps) the ones it understands. Two local layouts under ``secrets_dir`` are read:

- ``<name>.env``: ``KEY=VALUE`` lines, ``#`` comments, optional ``export`` and quotes;
- ``<name>/<KEY>``: one file per key, which is how Kubernetes mounts a Secret as a volume
  (its ``..data`` symlinks and other dot-entries are skipped).

A Kubernetes GCP service-account secret holds the key file itself (``gcloud-application-
credentials.json``); when such a file is present and GOOGLE_APPLICATION_CREDENTIALS is not, the
latter is set to that file's path, as Seldon documents.

Values never leave this module in a readable form by accident: ``Credentials`` is a mapping whose
repr lists only the names, and no error message quotes a line of a secret file.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import structlog

from modelplane.libs.errors import InvalidError, NotFoundError

log = structlog.get_logger(__name__)

SECRET_FIELD = "spec.secretName"
# The file name Seldon documents for a GCP service-account key kept in a secret.
GCP_KEY_FILE = "gcloud-application-credentials.json"
GCP_CREDENTIALS = "GOOGLE_APPLICATION_CREDENTIALS"

# Kubernetes Secret names are DNS subdomains; also keeps a name from walking out of secrets_dir.
_NAME = re.compile(r"^[A-Za-z0-9]([-._A-Za-z0-9]*[A-Za-z0-9])?$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class Credentials(Mapping[str, str]):
    """Read-only environment-style names -> values whose repr and str never show a value."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Credentials(names={sorted(self._values)})"

    __str__ = __repr__


NO_CREDENTIALS = Credentials()


class SecretStore:
    """Resolves secret names from a local secrets directory; "" means the default secret."""

    def __init__(self, secrets_dir: Path, default_secret_name: str = "") -> None:
        self._dir = secrets_dir
        self._default = default_secret_name

    def effective_name(self, secret_name: str) -> str:
        """The secret a fetch uses: the model's own, else the configured default, else ""."""
        return secret_name or self._default

    async def resolve(self, secret_name: str) -> Credentials:
        """The entries of ``secret_name`` (or of the default secret when it is empty)."""
        name = self.effective_name(secret_name)
        if not name:
            return NO_CREDENTIALS
        if not _NAME.match(name) or ".." in name:
            raise InvalidError(f"secret name {name!r} is not a valid secret name", field=SECRET_FIELD)
        values = await asyncio.to_thread(self._read, name)
        log.debug("secret_resolved", secret_name=name, keys=sorted(values))
        return values

    def _read(self, name: str) -> Credentials:
        env_file = self._dir / f"{name}.env"
        folder = self._dir / name
        if env_file.is_file():
            return Credentials(_parse_env_file(env_file, name))
        if folder.is_dir():
            return Credentials(_read_folder(folder))
        raise NotFoundError(f"secret {name} not found", field=SECRET_FIELD)


def _parse_env_file(path: Path, name: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            # Never quote the line: it may hold a value.
            raise InvalidError(
                f"secret {name}: line {number} of {path.name} is not KEY=VALUE", field=SECRET_FIELD
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def _read_folder(folder: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for entry in sorted(folder.iterdir()):
        # Kubernetes' atomic-writer layout: "..data" and "..<timestamp>" are internals.
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if entry.name == GCP_KEY_FILE:
            values.setdefault(GCP_CREDENTIALS, str(entry.resolve()))
            continue
        # A trailing newline comes from `echo` or editors, never from the credential itself.
        values[entry.name] = entry.read_text(encoding="utf-8").rstrip("\r\n")
    return values
