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

Who may use a secret (the rule; models have no namespaces, every Model shares one):

- its name is a plain name (no "/", "..", absolute path): it can only name an entry of
  ``secrets_dir``, and that entry (and, in a folder, each key file) must resolve inside
  ``secrets_dir`` after symlinks are followed, so a secret cannot be a link to the auth tokens
  or to a file elsewhere on the host;
- a secret may say which models may use it with the key ``MODELPLANE_ALLOWED_MODELS``
  (comma-separated model names or shell-style patterns such as ``fraud-*``); a fetch for any
  other model (or for no named model) is refused, naming ``spec.secretName``. The key itself is
  never handed to a fetcher. A secret without the key may be used by every model, which is the
  single-user default of a local run; shared installations list the models.

Values never leave this module in a readable form by accident: ``Credentials`` is a mapping whose
repr lists only the names, and no error message quotes a line of a secret file.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
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
# The key by which a secret lists the models that may use it (see the rule above).
ALLOWED_MODELS_KEY = "MODELPLANE_ALLOWED_MODELS"

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

    async def resolve(self, secret_name: str, model: str = "") -> Credentials:
        """The entries of ``secret_name`` (or of the default secret when it is empty) for ``model``.

        InvalidError when the secret lists the models that may use it and ``model`` is not one.
        """
        name = self.effective_name(secret_name)
        if not name:
            return NO_CREDENTIALS
        if not _NAME.match(name) or ".." in name:
            raise InvalidError(f"secret name {name!r} is not a valid secret name", field=SECRET_FIELD)
        values = await asyncio.to_thread(self._read, name)
        allowed = values.pop(ALLOWED_MODELS_KEY, None)
        if allowed is not None and not _lists(allowed, model):
            raise InvalidError(
                f"secret {name} is not for model {model!r} (it lists the models that may use it "
                f"in {ALLOWED_MODELS_KEY})",
                field=SECRET_FIELD,
            )
        log.debug("secret_resolved", secret_name=name, keys=sorted(values))
        return Credentials(values)

    def _read(self, name: str) -> dict[str, str]:
        root = Path(os.path.realpath(self._dir))
        env_file = self._dir / f"{name}.env"
        folder = self._dir / name
        if env_file.is_file():
            _check_inside(env_file, root, name)
            return _parse_env_file(env_file, name)
        if folder.is_dir():
            _check_inside(folder, root, name)
            return _read_folder(folder, name)
        raise NotFoundError(f"secret {name} not found", field=SECRET_FIELD)


def _check_inside(path: Path, root: Path, name: str) -> None:
    """Refuse a secret (or key file) that is a symlink leading out of ``root``."""
    if not Path(os.path.realpath(path)).is_relative_to(root):
        raise InvalidError(
            f"secret {name}: {path.name} leads outside the secrets folder; refused", field=SECRET_FIELD
        )


def _lists(allowed: str, model: str) -> bool:
    patterns = [p.strip() for p in allowed.split(",") if p.strip()]
    return bool(model) and any(fnmatch.fnmatchcase(model, p) for p in patterns)


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


def _read_folder(folder: Path, name: str) -> dict[str, str]:
    values: dict[str, str] = {}
    # Key files may be links (Kubernetes' KEY -> ..data/KEY), but only within the secret's folder.
    root = Path(os.path.realpath(folder))
    for entry in sorted(folder.iterdir()):
        # Kubernetes' atomic-writer layout: "..data" and "..<timestamp>" are internals.
        if entry.name.startswith(".") or not entry.is_file():
            continue
        _check_inside(entry, root, name)
        if entry.name == GCP_KEY_FILE:
            values.setdefault(GCP_CREDENTIALS, str(entry.resolve()))
            continue
        # A trailing newline comes from `echo` or editors, never from the credential itself.
        values[entry.name] = entry.read_text(encoding="utf-8").rstrip("\r\n")
    return values
