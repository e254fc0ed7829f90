"""What a fetcher is: an object that makes the artifact behind one URI scheme available locally.

Two kinds:
- in-place fetchers (local paths, ``file://``, ``pvc://``) hand back a path that already exists
  on this machine; nothing is copied and the cache is not involved;
- remote fetchers (s3, gs, azure blob, http(s), hf) say what the artifact's content is right
  now (``identity``: a cheap listing of object names, sizes and ETags/generations/revisions)
  and ``download`` it into an empty directory the cache gives them. The cache keys entries by
  URI + artifactVersion + identity, downloads into a temporary directory, checks, and renames,
  so a fetcher never has to care about partial downloads or concurrent fetches.

Credentials come resolved: ``FetchTarget.credentials`` holds the environment-style names of
the model's secret (AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_ACCESS_KEY,
HF_TOKEN, ...). A fetcher uses them instead of the process environment when present, and never
puts a value into a log line, an exception message or a path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from modelplane.libs.errors import PermanentError

# The setting that bounds one artifact, named in the error so the operator knows what to raise.
MAX_ARTIFACT_SETTING = "MODELPLANE_STORAGE_MAX_ARTIFACT_BYTES"


@dataclass(frozen=True, slots=True)
class FetchTarget:
    """One artifact to fetch: the URI as the user wrote it, plus what pins and unlocks it."""

    uri: str
    # The scheme as the registry parsed it; "" for a plain local path.
    scheme: str
    artifact_version: str = ""
    secret_name: str = ""
    # The secret's entries (environment-style names -> values); empty when there is no secret.
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)


class ArtifactTooLarge(PermanentError):
    """The artifact (downloaded or unpacked) exceeds the configured maximum; retrying won't help."""

    def __init__(self, limit: int, *, what: str = "the artifact") -> None:
        super().__init__(
            f"{what} is larger than the limit of {limit} bytes ({MAX_ARTIFACT_SETTING}); "
            "the download was stopped and its files removed",
            field="spec.storageUri",
        )
        self.limit = limit


class Progress(Protocol):
    """Where a download reports how far it got (the cache turns this into progress events)."""

    def total(self, total_bytes: int) -> None:
        """The artifact's size in bytes, once known (may be called again if it grows)."""

    def advance(self, n_bytes: int) -> None:
        """``n_bytes`` more were written; may raise (ArtifactTooLarge) to stop the download."""


@runtime_checkable
class SizeCapped(Protocol):
    """A ``Progress`` that also bounds the bytes written (the cache's meter).

    Downloads running in a thread (``objects.ThreadedDownload``) count their own bytes against
    ``max_bytes`` as they write, so the cap stops the writing thread itself, not a report that
    the event loop gets to later.
    """

    @property
    def max_bytes(self) -> int | None: ...


class NoProgress:
    """A ``Progress`` that ignores everything (for callers that do not show progress)."""

    def total(self, total_bytes: int) -> None:
        return None

    def advance(self, n_bytes: int) -> None:
        return None


class Fetcher(Protocol):
    """Makes artifacts of some URI schemes available as a local directory or file."""

    # The schemes this fetcher serves; "" means a plain local path.
    schemes: tuple[str, ...]
    # True: ``locate`` serves the artifact where it is; False: ``identity`` + ``download``.
    in_place: bool

    def describe(self) -> str:
        """A short human name for error messages, e.g. "local path"."""

    async def locate(self, target: FetchTarget) -> Path:
        """In-place fetchers: the existing local path; raise libs.errors types on failure."""

    async def identity(self, target: FetchTarget) -> str:
        """Remote fetchers: a string that changes whenever the artifact's content changes."""

    async def download(self, target: FetchTarget, dest: Path, progress: Progress) -> None:
        """Remote fetchers: write the artifact into the empty directory ``dest``.

        A single object lands as ``dest/<its base name>``; a prefix/folder keeps its relative
        layout under ``dest``. Raise libs.errors types (NotFoundError, InvalidError for bad
        credentials or URIs, RetryableError for transient failures) with messages that name
        the URI but never a credential.
        """
