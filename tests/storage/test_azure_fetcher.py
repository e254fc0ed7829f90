"""AzureBlobFetcher against a real Azurite: URI forms, layout, identity, credentials, errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from modelplane.libs.embedded_nats import free_port
from modelplane.libs.errors import InvalidError, NotFoundError, RetryableError
from modelplane.services.storage.fetchers.azure import (
    AzureBlobFetcher,
    AzureLocation,
    _settings,
    is_azure_blob_url,
    parse_azure_uri,
)
from modelplane.services.storage.fetchers.base import FetchTarget
from tests.helpers.azurite import ACCOUNT, ACCOUNT_KEY, Azurite, AzuriteUnavailable, running_azurite
from tests.helpers.progress import RecordingProgress

WRONG_KEY = "A" * 86 + "=="


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    try:
        with running_azurite(tmp_path_factory.mktemp("azurite")) as emulator:
            yield emulator
    except AzuriteUnavailable as exc:
        pytest.skip(f"Azurite unavailable: {exc}")


def admin(azurite: Azurite) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture
def container(azurite: Azurite) -> str:
    """A fresh private container with a model folder, a sibling prefix and a single blob."""
    name = f"c{uuid.uuid4().hex[:12]}"
    with admin(azurite) as service:
        created = service.create_container(name)
        created.upload_blob("models/iris/model-settings.json", b'{"name": "iris"}')
        created.upload_blob("models/iris/sub/model.joblib", b"x" * 3000)
        created.upload_blob("models/iris2/other.bin", b"sibling")
        created.upload_blob("single.bin", b"one object")
    return name


@pytest.fixture
def public_container(azurite: Azurite) -> str:
    name = f"p{uuid.uuid4().hex[:12]}"
    with admin(azurite) as service:
        service.create_container(name, public_access="container").upload_blob("m/model.bin", b"public")
    return name


def keyed(azurite: Azurite, uri: str, key: str = ACCOUNT_KEY) -> FetchTarget:
    creds = {"AZURE_STORAGE_BLOB_ENDPOINT": azurite.endpoint, "AZURE_STORAGE_ACCESS_KEY": key}
    return FetchTarget(uri=uri, scheme="azure-blob", credentials=creds)


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


async def test_single_blob_lands_under_its_base_name(
    azurite: Azurite, container: str, tmp_path: Path
) -> None:
    """A blob URI downloads to dest/<basename> and reports its size as progress."""
    progress = RecordingProgress()
    await AzureBlobFetcher().download(
        keyed(azurite, f"{azurite.account_url}/{container}/single.bin"), tmp_path, progress
    )
    assert files_under(tmp_path) == {"single.bin": b"one object"}
    assert (progress.totals, progress.done) == ([10], 10)


async def test_prefix_keeps_relative_layout(azurite: Azurite, container: str, tmp_path: Path) -> None:
    """A folder prefix downloads every blob under it with its relative path, and no sibling prefix."""
    progress = RecordingProgress()
    uri = f"{azurite.account_url}/{container}/models/iris/"
    await AzureBlobFetcher().download(keyed(azurite, uri), tmp_path, progress)
    assert files_under(tmp_path) == {
        "model-settings.json": b'{"name": "iris"}',
        "sub/model.joblib": b"x" * 3000,
    }
    assert (progress.totals, progress.done) == ([3016], 3016)


async def test_azure_blob_scheme_uses_the_endpoint(azurite: Azurite, container: str, tmp_path: Path) -> None:
    """azure-blob://<account>/<container>/<path> is served from the configured endpoint."""
    uri = f"azure-blob://{ACCOUNT}/{container}/models/iris"
    await AzureBlobFetcher().download(keyed(azurite, uri), tmp_path, RecordingProgress())
    assert set(files_under(tmp_path)) == {"model-settings.json", "sub/model.joblib"}


async def test_missing_blob_and_container_are_not_found(azurite: Azurite, container: str) -> None:
    """A path with no blobs, or a container that does not exist, is a NotFoundError naming the URI."""
    missing_blob = f"{azurite.account_url}/{container}/nothing-here"
    with pytest.raises(NotFoundError, match=missing_blob):
        await AzureBlobFetcher().identity(keyed(azurite, missing_blob))
    missing_container = f"{azurite.account_url}/no-such-container/m"
    with pytest.raises(NotFoundError, match=missing_container):
        await AzureBlobFetcher().identity(keyed(azurite, missing_container))


async def test_identity_changes_with_content(azurite: Azurite, container: str) -> None:
    """The identity is stable while nothing changes and changes when a blob is rewritten."""
    fetcher = AzureBlobFetcher()
    target = keyed(azurite, f"{azurite.account_url}/{container}/models/iris")
    first = await fetcher.identity(target)
    assert await fetcher.identity(target) == first
    with admin(azurite) as service:
        service.get_blob_client(container, "models/iris/sub/model.joblib").upload_blob(
            b"y" * 3000, overwrite=True
        )
    assert await fetcher.identity(target) != first


async def test_wrong_account_key_is_invalid_without_the_key(azurite: Azurite, container: str) -> None:
    """A wrong account key is an InvalidError naming the URI and the 403, never the key."""
    uri = f"{azurite.account_url}/{container}/single.bin"
    with pytest.raises(InvalidError, match=r"access to .* was refused \(HTTP 403") as caught:
        await AzureBlobFetcher().identity(keyed(azurite, uri, key=WRONG_KEY))
    assert uri in str(caught.value)
    assert WRONG_KEY not in str(caught.value)
    assert ACCOUNT_KEY not in str(caught.value)


async def test_malformed_account_key_is_invalid(azurite: Azurite, container: str) -> None:
    """An account key that is not base64 is an InvalidError on the secret, without the value."""
    with pytest.raises(InvalidError) as caught:
        await AzureBlobFetcher().identity(
            keyed(azurite, f"{azurite.account_url}/{container}/x", key="not base64!")
        )
    assert caught.value.field == "spec.secretName"
    assert "not base64!" not in str(caught.value)


async def test_connection_string_credential(azurite: Azurite, container: str, tmp_path: Path) -> None:
    """AZURE_STORAGE_CONNECTION_STRING alone works; its BlobEndpoint enables the path-style URI."""
    target = FetchTarget(
        uri=f"{azurite.account_url}/{container}/single.bin",
        scheme="azure-blob",
        credentials={"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string},
    )
    await AzureBlobFetcher().download(target, tmp_path, RecordingProgress())
    assert files_under(tmp_path) == {"single.bin": b"one object"}


async def test_anonymous_reads_a_public_container(
    azurite: Azurite, public_container: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no secret, a public container is read anonymously (endpoint from the environment)."""
    for name in (
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_CLIENT_ID",
        "AZ_CLIENT_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_BLOB_ENDPOINT", azurite.endpoint)
    target = FetchTarget(uri=f"{azurite.account_url}/{public_container}/m", scheme="azure-blob")
    await AzureBlobFetcher().download(target, tmp_path, RecordingProgress())
    assert files_under(tmp_path) == {"model.bin": b"public"}


async def test_anonymous_on_private_container_is_invalid(
    azurite: Azurite, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anonymous access to a private container is an InvalidError saying it is not public."""
    for name in (
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_CLIENT_ID",
        "AZ_CLIENT_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    target = FetchTarget(
        uri=f"{azurite.account_url}/{container}/single.bin",
        scheme="azure-blob",
        credentials={"AZURE_STORAGE_BLOB_ENDPOINT": azurite.endpoint},
    )
    with pytest.raises(InvalidError, match="not public"):
        await AzureBlobFetcher().identity(target)


async def test_unreachable_endpoint_is_retryable() -> None:
    """An endpoint that refuses connections is a RetryableError naming the URI."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    uri = f"{endpoint}/{ACCOUNT}/models/x"
    target = FetchTarget(uri=uri, scheme="azure-blob", credentials={"AZURE_STORAGE_BLOB_ENDPOINT": endpoint})
    with pytest.raises(RetryableError, match=uri):
        await AzureBlobFetcher(retry_total=0).identity(target)


async def test_unreachable_sign_in_service_is_retryable_without_the_secret() -> None:
    """A service principal whose sign-in host is unreachable is a RetryableError, secret not quoted."""
    creds = {
        "AZ_CLIENT_ID": "client-id",
        "AZ_TENANT_ID": "tenant-id",
        "AZ_CLIENT_SECRET": "sp-s3cr3t",
        "AZURE_AUTHORITY_HOST": f"https://127.0.0.1:{free_port()}",
    }
    target = FetchTarget(
        uri="https://acct1.blob.core.windows.net/models/x", scheme="azure-blob", credentials=creds
    )
    with pytest.raises(
        RetryableError, match=r"sign-in service for https://acct1\.blob\.core\.windows\.net/models/x"
    ) as caught:
        await AzureBlobFetcher(retry_total=0).identity(target)
    assert "sp-s3cr3t" not in str(caught.value)


def test_legacy_service_principal_names_are_mapped() -> None:
    """Seldon v1's AZ_* names map to the azure-identity names; explicit new names win."""
    settings = _settings(
        {"AZ_CLIENT_ID": "id", "AZ_TENANT_ID": "t", "AZ_CLIENT_SECRET": "s", "AZURE_TENANT_ID": "t2"}
    )
    assert (settings["AZURE_CLIENT_ID"], settings["AZURE_TENANT_ID"], settings["AZURE_CLIENT_SECRET"]) == (
        "id",
        "t2",
        "s",
    )


@pytest.mark.parametrize(
    ("uri", "endpoint", "expected"),
    [
        (
            "https://acct1.blob.core.windows.net/models/iris/v1",
            None,
            AzureLocation("https://acct1.blob.core.windows.net", "acct1", "models", "iris/v1"),
        ),
        (
            "https://acct1.blob.core.windows.net/models",
            None,
            AzureLocation("https://acct1.blob.core.windows.net", "acct1", "models", ""),
        ),
        (
            "http://127.0.0.1:10000/devstoreaccount1/models/iris",
            "http://127.0.0.1:10000",
            AzureLocation("http://127.0.0.1:10000/devstoreaccount1", "devstoreaccount1", "models", "iris"),
        ),
        (
            "azure-blob://acct1/models/iris",
            None,
            AzureLocation("https://acct1.blob.core.windows.net", "acct1", "models", "iris"),
        ),
        (
            "azure-blob://devstoreaccount1/models/iris",
            "http://127.0.0.1:10000",
            AzureLocation("http://127.0.0.1:10000/devstoreaccount1", "devstoreaccount1", "models", "iris"),
        ),
    ],
)
def test_uri_forms_parse(uri: str, endpoint: str | None, expected: AzureLocation) -> None:
    """Host-style, path-style (with an endpoint) and azure-blob:// URIs parse to account, container, path."""
    assert parse_azure_uri(uri, endpoint) == expected
    assert is_azure_blob_url(uri, endpoint)


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:10000/devstoreaccount1/models/iris",
        "https://example.com/a/b",
        "https://acct1.blob.core.windows.net/",
        "s3://b/k",
    ],
)
def test_other_uris_are_invalid(uri: str) -> None:
    """Path-style URIs without a configured endpoint, other hosts and empty containers are InvalidError."""
    with pytest.raises(InvalidError) as caught:
        parse_azure_uri(uri)
    assert caught.value.field == "spec.storageUri"
