"""What a fetcher is: an object that makes the artifact behind one URI scheme available locally."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class FetchTarget:
    """One artifact to fetch: the URI as the user wrote it, plus what pins and unlocks it."""

    uri: str
    # The scheme as the registry parsed it; "" for a plain local path.
    scheme: str
    artifact_version: str = ""
    secret_name: str = ""


class Fetcher(Protocol):
    """Makes artifacts of some URI schemes available as a local directory or file."""

    # The schemes this fetcher serves; "" means a plain local path.
    schemes: tuple[str, ...]

    def describe(self) -> str:
        """A short human name for error messages, e.g. "local path"."""

    async def fetch(self, target: FetchTarget) -> Path:
        """Return a local path holding the artifact; raise libs.errors types on failure."""
