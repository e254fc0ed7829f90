"""``hf://owner/model[:revision]`` URIs: a Hugging Face Hub model snapshot via huggingface_hub.

The URI is parsed strictly (KServe's form): exactly one owner and one model name, an optional
revision (branch, tag or commit sha) after a colon. ``identity`` is the commit sha the revision
points at right now (``HfApi.model_info``), so a moving branch such as ``main`` refetches when it
moves and a pinned sha never does. ``download`` pins the snapshot to that same sha and writes
the files straight into the cache's directory (``snapshot_download(local_dir=...)``), then
drops the hub's bookkeeping folder so the artifact is the model files only.

The snapshot runs under ``objects.ThreadedDownload``: huggingface_hub reports the bytes it writes
through the progress-bar class it is given (``tqdm_class``); ours never draws, forwards those
bytes to ``Progress`` and raises ``Cancelled`` once the fetch was cancelled, which stops each
file's download at its next chunk.

Every hub connection goes through ``egress.GuardedHubBackend`` (installed as huggingface_hub's
client factory): an HF_ENDPOINT, or a redirect (the hub's CDN), resolving into a blocked
network (``libs.egress``) stops the fetch with a permanent error naming spec.storageUri.

HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN) and HF_ENDPOINT come from the model's secret
first, the environment second. Every hub call has a timeout; failures become libs.errors types
whose messages name the URI and never the token.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils.tqdm import tqdm as hf_tqdm

from modelplane.libs.egress import DEFAULT_BLOCKED_NETWORKS, EgressPolicy, EgressRefused
from modelplane.libs.errors import (
    InvalidError,
    ModelplaneError,
    NotFoundError,
    RetryableError,
)
from modelplane.services.storage.fetchers.base import FetchTarget, Progress
from modelplane.services.storage.fetchers.egress import install_hub_egress
from modelplane.services.storage.fetchers.objects import Cancelled, ThreadedDownload

T = TypeVar("T")

HF_PREFIX = "hf://"
# Seconds for one metadata request to the hub; a dead endpoint must fail fast, not hang a load.
REQUEST_TIMEOUT_S = 15.0
# How long a caller should wait before retrying when the hub is unreachable (seconds).
RETRY_DELAY_S = 30.0
# Hub repo names: letters, digits, "-", "_", "." (at most 96), not starting with a separator.
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
_URI = re.compile(
    rf"^hf://(?P<owner>{_NAME})/(?P<model>{_NAME})(?::(?P<revision>[A-Za-z0-9][A-Za-z0-9._/-]*))?$"
)
_TRUE = ("1", "true", "yes", "on")
# The name snapshot_download gives its bar of bytes written to disk (one per snapshot).
_BYTES_BAR = "huggingface_hub.snapshot_download"


@dataclass(frozen=True, slots=True)
class HfModelRef:
    """A parsed ``hf://`` URI."""

    owner: str
    model: str
    revision: str | None = None

    @property
    def repo_id(self) -> str:
        return f"{self.owner}/{self.model}"

    @classmethod
    def parse(cls, uri: str) -> HfModelRef:
        match = _URI.match(uri)
        if match is None or ".." in uri[len(HF_PREFIX) :]:
            raise InvalidError(
                f"{uri!r} is not a Hugging Face model URI; expected hf://owner/model[:revision]",
                field="spec.storageUri",
            )
        return cls(match["owner"], match["model"], match["revision"])


@dataclass(frozen=True, slots=True)
class _HubAccess:
    endpoint: str | None
    token: str | None
    offline: bool

    @classmethod
    def resolve(cls, credentials: Mapping[str, str]) -> _HubAccess:
        def get(*names: str) -> str | None:
            for name in names:
                value = credentials.get(name) or os.environ.get(name)
                if value:
                    return value
            return None

        return cls(
            endpoint=get("HF_ENDPOINT"),
            token=get("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"),
            offline=(get("HF_HUB_OFFLINE") or "").lower() in _TRUE,
        )


class HuggingFaceFetcher:
    """Downloads model snapshots from the Hugging Face Hub (or a mirror at HF_ENDPOINT)."""

    schemes: tuple[str, ...] = ("hf",)
    in_place = False

    def __init__(self, *, timeout: float = REQUEST_TIMEOUT_S, egress: EgressPolicy | None = None) -> None:
        self._timeout = timeout
        # huggingface_hub's client is per process: this fetcher's policy becomes the process's.
        install_hub_egress(egress if egress is not None else EgressPolicy.parse(DEFAULT_BLOCKED_NETWORKS))

    def describe(self) -> str:
        return "hf (Hugging Face Hub)"

    async def identity(self, target: FetchTarget) -> str:
        ref = HfModelRef.parse(target.uri)
        access = _access(target)
        sha, _ = await _run(target, ref, access, self._model_info, ref, access, False)
        return sha

    async def download(self, target: FetchTarget, dest: Path, progress: Progress) -> None:
        ref = HfModelRef.parse(target.uri)
        access = _access(target)
        sha, size = await _run(target, ref, access, self._model_info, ref, access, True)
        progress.total(size)
        bars = ByteBars()
        work = functools.partial(self._snapshot, ref, access, sha, dest, bars)
        await _mapped(target, ref, access, ThreadedDownload(progress).run(work))
        # The listing's sizes are what the cache checks against; reconcile with what was counted.
        progress.advance(size - bars.reported)

    def _model_info(self, ref: HfModelRef, access: _HubAccess, sizes: bool) -> tuple[str, int]:
        info = HfApi(endpoint=access.endpoint, token=access.token).model_info(
            ref.repo_id, revision=ref.revision, timeout=self._timeout, files_metadata=sizes
        )
        if not info.sha:
            raise NotFoundError(f"hf://{ref.repo_id} has no commit for revision {ref.revision or 'main'}")
        size = sum(s.size or 0 for s in info.siblings or [])
        return info.sha, size

    def _snapshot(
        self,
        ref: HfModelRef,
        access: _HubAccess,
        sha: str,
        dest: Path,
        bars: ByteBars,
        bridge: ThreadedDownload,
    ) -> None:
        snapshot_download(
            ref.repo_id,
            revision=sha,
            local_dir=dest,
            token=access.token,
            endpoint=access.endpoint,
            etag_timeout=self._timeout,
            tqdm_class=bars.tqdm_class(bridge),
        )
        # The hub's per-folder bookkeeping; not part of the model.
        shutil.rmtree(dest / ".cache", ignore_errors=True)


class ByteBars:
    """Makes the ``tqdm_class`` of one snapshot download and counts the bytes it reported."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reported = 0

    @property
    def reported(self) -> int:
        with self._lock:
            return self._reported

    def tqdm_class(self, bridge: ThreadedDownload) -> type[hf_tqdm]:
        bars = self

        class _Bar(hf_tqdm):
            """A bar that never draws: bytes go to ``bridge``, a cancelled fetch raises."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                self._counts = kwargs.get("name") == _BYTES_BAR
                kwargs["disable"] = True
                super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # tqdm is untyped

            def update(self, n: float | None = 1) -> bool | None:
                if bridge.stopped:
                    raise Cancelled
                if self._counts and n:
                    with bars._lock:
                        bars._reported += int(n)
                    bridge.advance(int(n))
                return super().update(n)  # type: ignore[no-any-return]

        return _Bar


def _access(target: FetchTarget) -> _HubAccess:
    access = _HubAccess.resolve(target.credentials)
    if access.offline:
        raise RetryableError(
            f"cannot fetch {target.uri}: Hugging Face Hub access is off (HF_HUB_OFFLINE is set)",
            delay=RETRY_DELAY_S,
        )
    return access


async def _run(
    target: FetchTarget, ref: HfModelRef, access: _HubAccess, fn: Callable[..., T], *args: object
) -> T:
    """Run a blocking hub call in a thread and turn its failures into libs.errors types."""
    return await _mapped(target, ref, access, asyncio.to_thread(fn, *args))


async def _mapped(target: FetchTarget, ref: HfModelRef, access: _HubAccess, step: Awaitable[T]) -> T:
    """Await ``step`` (hub work in a thread), turning its failures into libs.errors types."""
    try:
        return await step
    except EgressRefused as exc:
        # The backend knows the host it refused, not the storageUri: name the field's value.
        raise EgressRefused(target.uri, exc.reason, address=exc.address, network=exc.network) from None
    except ModelplaneError:
        raise
    except Exception as exc:
        mapped = _map_error(target, ref, access, exc)
        if mapped is None:
            raise
        raise mapped from None


def _map_error(
    target: FetchTarget, ref: HfModelRef, access: _HubAccess, exc: Exception
) -> ModelplaneError | None:
    uri = target.uri
    hub = access.endpoint or "the Hugging Face Hub"
    token_hint = f"the token from secret {target.secret_name!r}" if target.secret_name else "no HF_TOKEN"
    if isinstance(exc, GatedRepoError):
        return InvalidError(
            f"{uri} is gated and {token_hint} was not granted access", field="spec.storageUri"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return NotFoundError(
            f"{uri}: model {ref.repo_id} not found on {hub} (or private and {token_hint} may not read it)",
            field="spec.storageUri",
        )
    if isinstance(exc, RevisionNotFoundError):
        return NotFoundError(f"{uri}: revision {ref.revision!r} not found", field="spec.storageUri")
    if isinstance(exc, DisabledRepoError):
        return NotFoundError(f"{uri}: model {ref.repo_id} is disabled on {hub}", field="spec.storageUri")
    if isinstance(exc, OfflineModeIsEnabled):
        return RetryableError(f"cannot fetch {uri}: huggingface_hub is in offline mode", delay=RETRY_DELAY_S)
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        if status in (401, 403):
            return InvalidError(
                f"access to {uri} was denied (HTTP {status}; {token_hint})", field="spec.storageUri"
            )
        if status == 404:
            return NotFoundError(f"{uri}: {hub} has no model {ref.repo_id}", field="spec.storageUri")
        if status == 429 or status >= 500 or status == 0:
            return RetryableError(f"{hub} failed for {uri} (HTTP {status})", delay=RETRY_DELAY_S)
        return InvalidError(f"{hub} refused {uri} (HTTP {status})", field="spec.storageUri")
    if isinstance(exc, (LocalEntryNotFoundError, httpx2.TransportError, ConnectionError, TimeoutError)):
        return RetryableError(
            f"could not reach {hub} to fetch {uri}: {type(exc).__name__}", delay=RETRY_DELAY_S
        )
    return None
