"""``pvc://<claim>/<path>`` URIs: a volume that is already mounted, served in place.

On Kubernetes the agent's pod mounts each claim under one root (``<root>/<claim>``), as KServe
does for ``pvc://`` storage URIs; locally the root is a configured directory. Nothing is copied.
A path that would leave its claim (``..``, or a symlink inside the volume pointing out of the
root) is refused, so a model cannot read another claim or the node's file system.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path, PurePosixPath

from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.services.storage.fetchers.base import FetchTarget

PVC_PREFIX = "pvc://"
# A PersistentVolumeClaim name is a DNS-1123 subdomain.
_CLAIM = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class PvcFetcher:
    """Serves artifacts from mounted volume claims under ``root``, in place."""

    schemes: tuple[str, ...] = ("pvc",)
    in_place = True

    def __init__(self, root: Path) -> None:
        self._root = root

    def describe(self) -> str:
        return "pvc (mounted volume claim)"

    async def locate(self, target: FetchTarget) -> Path:
        claim, rel = parse_pvc_uri(target.uri)
        path, state = await asyncio.to_thread(_resolve, self._root, claim, rel)
        shown = f"path {rel!r} of claim {claim!r}" if rel else f"claim {claim!r}"
        if state == "outside":
            raise InvalidError(f"{shown} leads outside the claim's volume", field="spec.storageUri")
        if state == "missing":
            raise NotFoundError(f"{shown} does not exist (looked in {path})", field="spec.storageUri")
        return path


def parse_pvc_uri(uri: str) -> tuple[str, str]:
    """``pvc://claim/a/b`` -> ("claim", "a/b"); InvalidError for anything malformed."""
    if not uri.startswith(PVC_PREFIX):
        raise InvalidError(f"{uri!r} is not a pvc:// URI", field="spec.storageUri")
    claim, _, rel = uri[len(PVC_PREFIX) :].partition("/")
    if not _CLAIM.match(claim):
        raise InvalidError(
            f"{uri!r}: {claim!r} is not a volume claim name (lower-case DNS name)",
            field="spec.storageUri",
        )
    rel = rel.strip("/")
    if ".." in PurePosixPath(rel).parts:
        raise InvalidError(f"{uri!r}: '..' may not be used in a pvc:// path", field="spec.storageUri")
    return claim, rel


def _resolve(root: Path, claim: str, rel: str) -> tuple[Path, str]:
    claim_root = (root / claim).resolve()
    path = (claim_root / rel).resolve() if rel else claim_root
    if path != claim_root and not path.is_relative_to(claim_root):
        return path, "outside"
    return path, "ok" if path.exists() else "missing"
