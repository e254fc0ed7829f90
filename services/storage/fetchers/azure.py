"""Azure Blob Storage with azure-storage-blob (sync client in a worker thread).

URIs (``parse_azure_uri``; the registry routes them here with ``is_azure_blob_url``):
- ``https://<account>.blob.core.windows.net/<container>/<path>``, the form KServe and Seldon
  use (any ``<account>.blob.core.<cloud suffix>`` host, so sovereign clouds work too);
- ``azure-blob://<account>/<container>/<path>``, served by the endpoint below when one is set;
- ``http(s)://<host>:<port>/<account>/<container>/<path>``, the path-style form of Azurite and
  other emulators, only when a blob endpoint on that host is configured:
  ``AZURE_STORAGE_BLOB_ENDPOINT`` / ``AZURE_BLOB_ENDPOINT``, or the ``BlobEndpoint`` of
  ``AZURE_STORAGE_CONNECTION_STRING``. Without one such a URI is an ordinary http(s) download.
``<path>`` may be empty (the whole container), one blob, or a "folder" prefix.

Credentials come from the model's secret or, when the model has none, from the process
environment, in KServe/Seldon order:
1. ``AZURE_CLIENT_ID`` + ``AZURE_TENANT_ID`` + ``AZURE_CLIENT_SECRET``: a service principal
   (azure-identity ``ClientSecretCredential``; ``AZURE_AUTHORITY_HOST`` for other clouds); Seldon v1's ``AZ_CLIENT_ID``, ``AZ_TENANT_ID``,
   ``AZ_CLIENT_SECRET`` (and ``AZ_SUBSCRIPTION_ID``) are accepted as the same names;
2. ``AZURE_STORAGE_ACCESS_KEY``: the account key of the URI's account;
3. ``AZURE_STORAGE_CONNECTION_STRING``;
4. none: anonymous, which reads containers with public access.

The artifact's identity is a digest of every selected blob's name, size and ETag.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import ClientSecretCredential
from azure.storage.blob import BlobServiceClient, ContainerClient

from modelplane.libs.errors import InvalidError, NotFoundError, RetryableError
from modelplane.services.storage.fetchers.base import FetchTarget, Progress
from modelplane.services.storage.fetchers.objects import (
    FIELD,
    RemoteObject,
    ThreadedDownload,
    identity_of,
    select_objects,
)

SCHEME = "azure-blob"
ENDPOINT_KEYS = ("AZURE_STORAGE_BLOB_ENDPOINT", "AZURE_BLOB_ENDPOINT")
CONNECTION_STRING_KEY = "AZURE_STORAGE_CONNECTION_STRING"
ACCESS_KEY_KEY = "AZURE_STORAGE_ACCESS_KEY"
SERVICE_PRINCIPAL_KEYS = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET")
AUTHORITY_KEY = "AZURE_AUTHORITY_HOST"
# Seldon Core v1 / older KServe names -> the azure-identity names.
LEGACY_NAMES = {
    "AZ_CLIENT_ID": "AZURE_CLIENT_ID",
    "AZ_TENANT_ID": "AZURE_TENANT_ID",
    "AZ_CLIENT_SECRET": "AZURE_CLIENT_SECRET",
    "AZ_SUBSCRIPTION_ID": "AZURE_SUBSCRIPTION_ID",
}
_HOST_STYLE = re.compile(r"^(?P<account>[a-z0-9]{3,24})\.blob\.core\.[a-z0-9.-]+$")
# Per-request socket timeouts, seconds: connecting should be quick; a chunk read may be slow.
_CONNECTION_TIMEOUT_S = 10
_READ_TIMEOUT_S = 60


@dataclass(frozen=True, slots=True)
class AzureLocation:
    """A parsed blob URI: where the account is served and what to read from it."""

    account_url: str
    account: str
    container: str
    path: str


def parse_azure_uri(uri: str, endpoint: str | None = None) -> AzureLocation:
    """Parse one of the URI forms in the module docstring; ``endpoint`` enables path style."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    segments = parts.path.lstrip("/")
    if scheme == SCHEME:
        account = parts.netloc
        container, _, path = segments.partition("/")
        account_url = (
            _account_url(endpoint, account) if endpoint else f"https://{account}.blob.core.windows.net"
        )
    elif scheme in ("http", "https") and (match := _HOST_STYLE.match(parts.hostname or "")):
        account = match.group("account")
        container, _, path = segments.partition("/")
        account_url = f"{scheme}://{parts.netloc}"
    elif scheme in ("http", "https") and endpoint and _same_origin(uri, endpoint):
        account, _, rest = segments.partition("/")
        container, _, path = rest.partition("/")
        account_url = f"{scheme}://{parts.netloc}/{account}"
    else:
        raise InvalidError(
            f"{uri} is not an Azure blob URI (expected https://<account>.blob.core.windows.net/<container>/<path>)",
            field=FIELD,
        )
    if not account or not container:
        raise InvalidError(f"{uri} names no storage account and container", field=FIELD)
    return AzureLocation(account_url=account_url, account=account, container=container, path=path)


def is_azure_blob_url(uri: str, endpoint: str | None = None) -> bool:
    """True when ``uri`` is a blob URI this fetcher serves (for the registry's routing)."""
    parts = urlsplit(uri)
    if parts.scheme.lower() == SCHEME:
        return True
    if parts.scheme.lower() not in ("http", "https"):
        return False
    return bool(_HOST_STYLE.match(parts.hostname or "")) or bool(endpoint and _same_origin(uri, endpoint))


def blob_endpoint(settings: Mapping[str, str]) -> str:
    """The configured blob endpoint in ``settings`` (a secret or os.environ), or ""."""
    for key in ENDPOINT_KEYS:
        if settings.get(key):
            return settings[key]
    return _connection_string_fields(settings.get(CONNECTION_STRING_KEY, "")).get("blobendpoint", "")


class AzureBlobFetcher:
    """Downloads blobs or blob prefixes from Azure Blob Storage (or Azurite)."""

    schemes: tuple[str, ...] = (SCHEME,)
    in_place = False

    def __init__(self, retry_total: int = 3) -> None:
        # The SDK's own retries for transient failures (exponential backoff); the caller retries
        # at its own level after that.
        self._retry_total = retry_total

    def describe(self) -> str:
        return "azure-blob (https://<account>.blob.core.windows.net/...)"

    async def locate(self, target: FetchTarget) -> Path:
        raise InvalidError(f"{target.uri} is remote and must be downloaded", field=FIELD)

    async def identity(self, target: FetchTarget) -> str:
        def work() -> str:
            with self._container(target) as (container, location):
                return identity_of(_list(container, location, target.uri))

        return await asyncio.to_thread(work)

    async def download(self, target: FetchTarget, dest: Path, progress: Progress) -> None:
        def work(bridge: ThreadedDownload) -> None:
            with self._container(target) as (container, location):
                objects = _list(container, location, target.uri)
                bridge.total(sum(o.size for o in objects))
                for obj in objects:
                    # Pin the ETag we listed so a concurrent overwrite cannot mix versions.
                    stream = container.download_blob(
                        obj.name, etag=obj.version, match_condition=MatchConditions.IfNotModified
                    )
                    with bridge.open(dest, obj) as file:
                        for chunk in stream.chunks():
                            file.write(chunk)

        await ThreadedDownload(progress).run(work)

    @contextmanager
    def _container(self, target: FetchTarget) -> Iterator[tuple[ContainerClient, AzureLocation]]:
        """A container client for the target's credentials; SDK errors become libs.errors."""
        settings = _settings(target.credentials)
        # The same endpoint look-up as the registry's routing: the secret's, else the process's.
        endpoint = blob_endpoint(settings) or blob_endpoint(os.environ)
        location = parse_azure_uri(target.uri, endpoint or None)
        kind = "anonymous"
        credential: Any = None
        options: dict[str, Any] = {
            "retry_total": self._retry_total,
            "connection_timeout": _CONNECTION_TIMEOUT_S,
            "read_timeout": _READ_TIMEOUT_S,
        }
        with _errors_named(target.uri, lambda: kind):
            if all(settings.get(k) for k in SERVICE_PRINCIPAL_KEYS):
                kind = "service principal"
                credential = ClientSecretCredential(
                    tenant_id=settings["AZURE_TENANT_ID"],
                    client_id=settings["AZURE_CLIENT_ID"],
                    client_secret=settings["AZURE_CLIENT_SECRET"],
                    # Sovereign clouds (and tests) name their sign-in host; None: public Azure. A
                    # named host is trusted as is (no discovery round trip to the public cloud).
                    authority=settings.get(AUTHORITY_KEY) or None,
                    disable_instance_discovery=bool(settings.get(AUTHORITY_KEY)),
                    retry_total=self._retry_total,
                )
                service = BlobServiceClient(location.account_url, credential=credential, **options)
            elif settings.get(ACCESS_KEY_KEY):
                kind = ACCESS_KEY_KEY
                key = {"account_name": location.account, "account_key": settings[ACCESS_KEY_KEY]}
                service = BlobServiceClient(location.account_url, credential=key, **options)
            elif settings.get(CONNECTION_STRING_KEY):
                kind = CONNECTION_STRING_KEY
                service = _from_connection_string(settings[CONNECTION_STRING_KEY], options)
            else:
                service = BlobServiceClient(location.account_url, **options)
            try:
                with service, service.get_container_client(location.container) as container:
                    yield container, location
            finally:
                if credential is not None:
                    credential.close()


def _settings(credentials: Mapping[str, str]) -> dict[str, str]:
    """Credentials from the secret, else the environment, with the legacy names mapped."""
    # A model's secret replaces the environment's credentials as a whole (mixing a secret's key
    # with the process's identity would be surprising). The endpoint may come from either.
    source: Mapping[str, str] = credentials or os.environ
    settings = {name: value for name, value in source.items() if value}
    for legacy, name in LEGACY_NAMES.items():
        if settings.get(legacy) and not settings.get(name):
            settings[name] = settings[legacy]
    return settings


def _from_connection_string(connection_string: str, options: dict[str, Any]) -> BlobServiceClient:
    try:
        return BlobServiceClient.from_connection_string(connection_string, **options)
    except ValueError:
        # The parse error may quote the string, which holds the account key.
        raise InvalidError(
            f"{CONNECTION_STRING_KEY} is not a valid connection string", field="spec.secretName"
        ) from None


def _connection_string_fields(connection_string: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in connection_string.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def _account_url(endpoint: str, account: str) -> str:
    parts = urlsplit(endpoint)
    if parts.path.strip("/") or _HOST_STYLE.match(parts.hostname or ""):
        return endpoint.rstrip("/")  # already names the account (".../devstoreaccount1" or a host)
    return f"{endpoint.rstrip('/')}/{account}"


def _same_origin(uri: str, endpoint: str) -> bool:
    a, b = urlsplit(uri), urlsplit(endpoint)
    return (a.scheme.lower(), a.netloc.lower()) == (b.scheme.lower(), b.netloc.lower())


def _list(container: ContainerClient, location: AzureLocation, uri: str) -> list[RemoteObject]:
    blobs = container.list_blobs(name_starts_with=location.path.rstrip("/") or None)
    return select_objects(uri, location.path, ((b.name, int(b.size or 0), str(b.etag)) for b in blobs))


@contextmanager
def _errors_named(uri: str, kind: Callable[[], str]) -> Iterator[None]:
    """Turn SDK errors into libs.errors naming the URI; never quote a credential.

    ``kind`` says which credential is in use ("anonymous", "service principal" or the name of
    the secret entry) so the message can say what to fix.
    """
    try:
        yield
    except ResourceNotFoundError as exc:
        hint = " (or it is not public and the model has no secret)" if kind() == "anonymous" else ""
        raise NotFoundError(f"{uri} not found: no such container or blob{hint}", field=FIELD) from exc
    except ResourceModifiedError as exc:
        raise RetryableError(f"{uri} changed while it was downloaded; retrying", delay=1.0) from exc
    except ClientAuthenticationError as exc:
        if exc.status_code in (401, 403):
            raise _refused(uri, exc, kind()) from exc
        if kind() == "service principal" and exc.response is None:
            # No answer from the sign-in service (network): not the secret's fault.
            raise RetryableError(
                f"cannot reach the Azure sign-in service for {uri}; retrying", delay=5.0
            ) from None
        raise _credential_error(uri, kind()) from None
    except HttpResponseError as exc:
        status, detail = exc.status_code, _detail(exc)
        if status in (401, 403):
            raise _refused(uri, exc, kind()) from exc
        if status is not None and (status == 429 or status >= 500):
            raise RetryableError(
                f"Azure Blob Storage failed for {uri} ({detail}); retrying", delay=5.0
            ) from exc
        raise InvalidError(f"Azure Blob Storage refused {uri} ({detail})", field=FIELD) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise RetryableError(f"Azure Blob Storage is unreachable for {uri}; retrying", delay=5.0) from exc
    except ValueError:
        raise _credential_error(uri, kind()) from None


def _detail(exc: HttpResponseError) -> str:
    # Storage errors carry a service error code ("AuthorizationFailure"); it names no secret.
    code = getattr(exc, "error_code", None)
    return f"HTTP {exc.status_code}, {code}" if code else f"HTTP {exc.status_code}"


def _refused(uri: str, exc: HttpResponseError, kind: str) -> InvalidError:
    if kind == "anonymous":
        hint = "the container is not public and the model has no secret"
    else:
        hint = f"check the {kind} (from the model's secret, or the environment without one)"
    return InvalidError(f"access to {uri} was refused ({_detail(exc)}): {hint}", field=FIELD)


def _credential_error(uri: str, kind: str) -> InvalidError:
    """The SDK could not use the credential at all (before any request was answered)."""
    # The SDK's own text may quote ids or parts of the value: say only which entry is wrong.
    if kind == "service principal":
        what = (
            "the service principal (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET) could not sign in"
        )
    elif kind == ACCESS_KEY_KEY:
        what = f"{ACCESS_KEY_KEY} is not a valid account key (base64)"
    else:
        what = f"the {kind} credential is malformed"
    return InvalidError(f"cannot use the credentials for {uri}: {what}", field="spec.secretName")
