"""Google Cloud Storage: ``gs://bucket/object-or-prefix`` with google-cloud-storage.

Credentials come from the model's secret or, when the model has none, from the process
environment (the names KServe and Seldon use), in this order:
- ``GOOGLE_APPLICATION_CREDENTIALS_JSON`` or ``gcloud-application-credentials.json`` (the key
  of KServe's GCS secrets): the credentials JSON itself (service account or authorized user);
- ``GOOGLE_APPLICATION_CREDENTIALS``: the path of such a JSON file;
- none of them: an anonymous client, which reads public buckets. There is deliberately no
  fallback to Google's "application default" discovery: it probes the GCE metadata server,
  which hangs for seconds off Google Cloud and makes a missing secret look like a slow network.

``STORAGE_EMULATOR_HOST`` (secret or environment) points the client at an emulator. Emulators
do not check credentials and the SDK would try to mint OAuth tokens from Google for real ones,
so against an emulator the client is anonymous (configured credentials are still parsed, so a
broken secret fails the same way everywhere).

The artifact's identity is a digest of every selected object's name, size, generation and MD5.
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import google.auth
import requests
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials, Credentials

from modelplane.libs.errors import InvalidError, NotFoundError, RetryableError
from modelplane.services.storage.fetchers.base import FetchTarget, Progress
from modelplane.services.storage.fetchers.objects import (
    FIELD,
    RemoteObject,
    ThreadedDownload,
    identity_of,
    select_objects,
)

with warnings.catch_warnings():
    # google-api-core warns at import when grpcio-status is absent; the storage client speaks
    # JSON over HTTP and never needs it.
    warnings.filterwarnings("ignore", message=".*grpcio-status.*", category=ImportWarning)
    from google.api_core import exceptions as api_exceptions
    from google.cloud import storage  # type: ignore[import-untyped]
    from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]

SCHEME_PREFIX = "gs://"
CREDENTIALS_JSON_KEYS = ("GOOGLE_APPLICATION_CREDENTIALS_JSON", "gcloud-application-credentials.json")
CREDENTIALS_FILE_KEY = "GOOGLE_APPLICATION_CREDENTIALS"
EMULATOR_KEY = "STORAGE_EMULATOR_HOST"
READ_ONLY_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
# Per HTTP request (connect + read), seconds: generous for large objects on slow links.
_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class GcsLocation:
    """A parsed ``gs://`` URI."""

    bucket: str
    path: str


def parse_gcs_uri(uri: str) -> GcsLocation:
    """Split ``gs://bucket/path`` (path may be empty: the whole bucket)."""
    if not uri.startswith(SCHEME_PREFIX):
        raise InvalidError(f"{uri} is not a gs:// URI", field=FIELD)
    bucket, _, path = uri[len(SCHEME_PREFIX) :].partition("/")
    if not bucket:
        raise InvalidError(f"{uri} names no bucket (expected gs://<bucket>/<path>)", field=FIELD)
    return GcsLocation(bucket=bucket, path=path)


class GcsFetcher:
    """Downloads objects or prefixes from Google Cloud Storage (or an emulator)."""

    schemes: tuple[str, ...] = ("gs",)
    in_place = False

    def __init__(self, retry_timeout_s: float = 30.0) -> None:
        # The SDK retries transient failures for up to 120 s by default; a model load should hear
        # about an unreachable store sooner (the caller retries at its own level).
        self._retry = DEFAULT_RETRY.with_timeout(retry_timeout_s)

    def describe(self) -> str:
        return "gs (Google Cloud Storage)"

    async def locate(self, target: FetchTarget) -> Path:
        raise InvalidError(f"{target.uri} is remote and must be downloaded", field=FIELD)

    async def identity(self, target: FetchTarget) -> str:
        location = parse_gcs_uri(target.uri)

        def work() -> str:
            with _errors_named(target.uri):
                return identity_of(_list(_client(target.credentials), location, target.uri, self._retry))

        return await asyncio.to_thread(work)

    async def download(self, target: FetchTarget, dest: Path, progress: Progress) -> None:
        location = parse_gcs_uri(target.uri)

        def work(bridge: ThreadedDownload) -> None:
            with _errors_named(target.uri):
                client = _client(target.credentials)
                objects = _list(client, location, target.uri, self._retry)
                bridge.total(sum(o.size for o in objects))
                bucket = client.bucket(location.bucket)
                for obj in objects:
                    # Pin the generation we listed so a concurrent overwrite cannot mix versions.
                    blob = bucket.blob(obj.name, generation=_generation(obj))
                    with bridge.open(dest, obj) as file:
                        blob.download_to_file(cast(Any, file), timeout=_TIMEOUT_S, retry=self._retry)

        await ThreadedDownload(progress).run(work)


def _list(client: storage.Client, location: GcsLocation, uri: str, retry: Any) -> list[RemoteObject]:
    blobs = client.list_blobs(
        location.bucket, prefix=location.path.rstrip("/") or None, timeout=_TIMEOUT_S, retry=retry
    )
    listing = ((b.name, int(b.size or 0), f"{b.generation}/{b.md5_hash or ''}") for b in blobs)
    return select_objects(uri, location.path, listing)


def _generation(obj: RemoteObject) -> int | None:
    generation = obj.version.partition("/")[0]
    return int(generation) if generation.isdigit() else None


def _client(credentials: Mapping[str, str]) -> storage.Client:
    """A client for the configured credentials (see the module docstring for the order)."""
    # A model's secret replaces the environment's credentials as a whole (mixing a secret's key
    # with the process's identity would be surprising); the emulator address is deployment
    # configuration, so it may come from either.
    loaded, project = _load_credentials(credentials or os.environ)
    emulator = credentials.get(EMULATOR_KEY) or os.environ.get(EMULATOR_KEY, "")
    if emulator:
        endpoint = emulator if "://" in emulator else f"http://{emulator}"
        return storage.Client(
            project=project or "modelplane",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint},
        )
    if loaded is None:
        return storage.Client.create_anonymous_client()
    return storage.Client(project=project or "<none>", credentials=loaded)


def _load_credentials(source: Mapping[str, str]) -> tuple[Credentials | None, str | None]:
    for key in CREDENTIALS_JSON_KEYS:
        content = source.get(key, "")
        if not content:
            continue
        try:
            info = json.loads(content)
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
            loaded, project = google.auth.load_credentials_from_dict(  # type: ignore[no-untyped-call]
                info, scopes=[READ_ONLY_SCOPE]
            )
        except (ValueError, auth_exceptions.GoogleAuthError):
            # The content is the secret: name the key, never echo the value or the parse error.
            raise InvalidError(
                f"{key} does not hold valid Google credentials JSON", field="spec.secretName"
            ) from None
        return loaded, project
    path = source.get(CREDENTIALS_FILE_KEY, "")
    if not path:
        return None, None
    if not Path(path).is_file():
        raise InvalidError(
            f"{CREDENTIALS_FILE_KEY} names a file that does not exist: {path}", field="spec.secretName"
        )
    try:
        loaded, project = google.auth.load_credentials_from_file(  # type: ignore[no-untyped-call]
            path, scopes=[READ_ONLY_SCOPE]
        )
    except (ValueError, auth_exceptions.GoogleAuthError):
        raise InvalidError(
            f"the file named by {CREDENTIALS_FILE_KEY} ({path}) does not hold valid Google credentials",
            field="spec.secretName",
        ) from None
    return loaded, project


@contextmanager
def _errors_named(uri: str) -> Iterator[None]:
    """Turn SDK and transport errors into libs.errors naming the URI (and no credential)."""
    try:
        yield
    except api_exceptions.NotFound as exc:
        raise NotFoundError(f"{uri} not found (no such bucket or object)", field=FIELD) from exc
    except (api_exceptions.Unauthorized, api_exceptions.Forbidden, auth_exceptions.RefreshError) as exc:
        status = getattr(exc, "code", None)
        raise InvalidError(
            f"access to {uri} was refused{f' (HTTP {status})' if status else ''}: "
            "check the model's secret (GOOGLE_APPLICATION_CREDENTIALS) or make the bucket public",
            field=FIELD,
        ) from exc
    except (api_exceptions.TooManyRequests, api_exceptions.ServerError) as exc:
        raise RetryableError(
            f"Google Cloud Storage failed for {uri} (HTTP {exc.code}); retrying", delay=5.0
        ) from exc
    except api_exceptions.GoogleAPICallError as exc:
        raise InvalidError(f"Google Cloud Storage refused {uri} (HTTP {exc.code})", field=FIELD) from exc
    except (
        requests.exceptions.RequestException,
        auth_exceptions.TransportError,
        api_exceptions.RetryError,
    ) as exc:
        raise RetryableError(f"Google Cloud Storage is unreachable for {uri}; retrying", delay=5.0) from exc
