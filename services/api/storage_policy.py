"""Admission of a Model's storage: which local paths and secret names a manifest may name.

The api refuses, at apply time, a local or ``file://`` storageUri outside the allowed roots or
inside the state directory (``libs.local_paths``: 400 / INVALID_ARGUMENT naming
``spec.storageUri``), a ``pvc://`` path with ``..``, and a secretName that is not a plain name
(``../auth/admin`` would walk out of the secrets folder), and an http(s) storageUri whose host
is a literal IP in a blocked network (``libs.egress``: the cloud metadata service). The storage service checks the same
again at fetch time: a symlink may be created after the apply, and the api's view of the file
system is only the first line of defence; names are resolved and checked only there, on the
address actually connected to.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import PurePosixPath

from modelplane.libs.egress import DEFAULT_BLOCKED_NETWORKS, EgressPolicy
from modelplane.libs.errors import InvalidError
from modelplane.libs.local_paths import STORAGE_FIELD, LocalRoots, local_path_of
from modelplane.libs.resources.types import Model, Resource

SECRET_FIELD = "spec.secretName"
PVC_PREFIX = "pvc://"
# What the storage service accepts as a secret name (a Kubernetes Secret name, dots allowed).
_SECRET_NAME = re.compile(r"^[A-Za-z0-9]([-._A-Za-z0-9]*[A-Za-z0-9])?$")


class StoragePolicy:
    """Checks a Model's storageUri and secretName before it is stored."""

    def __init__(self, roots: LocalRoots, egress: EgressPolicy | None = None) -> None:
        self._roots = roots
        self._egress = egress if egress is not None else EgressPolicy.parse(DEFAULT_BLOCKED_NETWORKS)

    def describe(self) -> str:
        return f"local storageUris inside {self._roots.describe()}, never inside the state directory"

    async def check(self, resource: Resource) -> None:
        """InvalidError naming the field when ``resource`` is a Model that may not be applied."""
        if not isinstance(resource, Model):
            return
        spec = resource.spec
        check_secret_name(spec.secret_name)
        uri = spec.storage_uri.strip()
        self._egress.check_literal(uri)
        if uri.lower().startswith(PVC_PREFIX):
            if ".." in PurePosixPath(uri[len(PVC_PREFIX) :]).parts:
                raise InvalidError("'..' may not be used in a pvc:// path", field=STORAGE_FIELD)
            return
        raw = local_path_of(uri)
        if raw is not None:
            # realpath reads symlinks: off the event loop.
            await asyncio.to_thread(self._roots.confine, raw)


def check_secret_name(name: str) -> None:
    """InvalidError unless ``name`` is empty or a plain secret name (no "/", "..", absolute path)."""
    if name and (not _SECRET_NAME.match(name) or ".." in name):
        raise InvalidError(
            f"{name!r} is not a secret name (letters, digits, '-', '_', '.'; no '/' or '..')",
            field=SECRET_FIELD,
        )
