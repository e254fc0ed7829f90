"""GcsFetcher against a real GCS emulator: layout, identity, credentials and error mapping."""

from __future__ import annotations

import json
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from modelplane.libs.embedded_nats import free_port
from modelplane.libs.errors import InvalidError, NotFoundError, RetryableError
from modelplane.services.storage.fetchers.base import FetchTarget
from modelplane.services.storage.fetchers.gcs import GcsFetcher, _errors_named, parse_gcs_uri
from tests.helpers.gcs_emulator import GcsEmulator, running_gcs_emulator
from tests.helpers.progress import RecordingProgress

with warnings.catch_warnings():
    # google-api-core warns at import when the (unneeded) grpcio-status package is absent.
    warnings.filterwarnings("ignore", message=".*grpcio-status.*", category=ImportWarning)
    from google.api_core import exceptions as api_exceptions


@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    with running_gcs_emulator(tmp_path_factory.mktemp("gcs")) as emulator:
        yield emulator


@pytest.fixture
def bucket(gcs: GcsEmulator) -> str:
    """A fresh bucket holding a small model folder, a sibling prefix and a single file."""
    name = f"b-{uuid.uuid4().hex[:12]}"
    created = gcs.client().create_bucket(name)
    created.blob("models/iris/model-settings.json").upload_from_string(b'{"name": "iris"}')
    created.blob("models/iris/sub/model.joblib").upload_from_string(b"x" * 3000)
    created.blob("models/iris2/other.bin").upload_from_string(b"sibling")
    created.blob("single.bin").upload_from_string(b"one object")
    return name


def target(uri: str, **credentials: str) -> FetchTarget:
    return FetchTarget(uri=uri, scheme="gs", credentials=credentials)


def emulated(uri: str, gcs: GcsEmulator, **credentials: str) -> FetchTarget:
    return target(uri, STORAGE_EMULATOR_HOST=gcs.url, **credentials)


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def service_account_json() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "test",
            "private_key_id": "k1",
            "private_key": pem,
            "client_email": "reader@test.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )


async def test_single_object_lands_under_its_base_name(gcs: GcsEmulator, bucket: str, tmp_path: Path) -> None:
    """gs://bucket/object downloads to dest/<basename> and reports its size as progress."""
    progress = RecordingProgress()
    await GcsFetcher().download(emulated(f"gs://{bucket}/single.bin", gcs), tmp_path, progress)
    assert files_under(tmp_path) == {"single.bin": b"one object"}
    assert progress.totals == [10]
    assert progress.done == 10


async def test_prefix_keeps_relative_layout(gcs: GcsEmulator, bucket: str, tmp_path: Path) -> None:
    """A prefix downloads every object under it with its relative path, and no sibling prefix."""
    progress = RecordingProgress()
    await GcsFetcher().download(emulated(f"gs://{bucket}/models/iris", gcs), tmp_path, progress)
    assert files_under(tmp_path) == {
        "model-settings.json": b'{"name": "iris"}',
        "sub/model.joblib": b"x" * 3000,
    }
    assert progress.totals == [3016]
    assert progress.done == 3016


async def test_trailing_slash_and_whole_bucket(gcs: GcsEmulator, bucket: str, tmp_path: Path) -> None:
    """A trailing slash is a prefix too, and gs://bucket fetches the whole bucket."""
    await GcsFetcher().download(emulated(f"gs://{bucket}/models/", gcs), tmp_path / "a", RecordingProgress())
    assert set(files_under(tmp_path / "a")) == {
        "iris/model-settings.json",
        "iris/sub/model.joblib",
        "iris2/other.bin",
    }
    await GcsFetcher().download(emulated(f"gs://{bucket}", gcs), tmp_path / "b", RecordingProgress())
    assert len(files_under(tmp_path / "b")) == 4


async def test_missing_object_and_bucket_are_not_found(gcs: GcsEmulator, bucket: str, tmp_path: Path) -> None:
    """A path with no objects, or a bucket that does not exist, is a NotFoundError naming the URI."""
    with pytest.raises(NotFoundError, match=f"gs://{bucket}/nothing-here"):
        await GcsFetcher().identity(emulated(f"gs://{bucket}/nothing-here", gcs))
    with pytest.raises(NotFoundError, match="gs://no-such-bucket-x/m"):
        await GcsFetcher().download(emulated("gs://no-such-bucket-x/m", gcs), tmp_path, RecordingProgress())


async def test_identity_changes_with_content(gcs: GcsEmulator, bucket: str) -> None:
    """The identity is stable while nothing changes and changes when an object is rewritten."""
    fetcher = GcsFetcher()
    uri = emulated(f"gs://{bucket}/models/iris", gcs)
    first = await fetcher.identity(uri)
    assert await fetcher.identity(uri) == first
    gcs.client().bucket(bucket).blob("models/iris/sub/model.joblib").upload_from_string(b"y" * 3000)
    assert await fetcher.identity(uri) != first


async def test_anonymous_client_from_environment(
    gcs: GcsEmulator, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no secret, STORAGE_EMULATOR_HOST from the environment and an anonymous client work."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    await GcsFetcher().download(target(f"gs://{bucket}/single.bin"), tmp_path, RecordingProgress())
    assert files_under(tmp_path) == {"single.bin": b"one object"}


@pytest.mark.parametrize(
    "key", ["GOOGLE_APPLICATION_CREDENTIALS_JSON", "gcloud-application-credentials.json"]
)
async def test_credentials_json_content_is_accepted(gcs: GcsEmulator, bucket: str, key: str) -> None:
    """Service-account JSON given as content (KServe secret keys) is parsed and accepted."""
    assert await GcsFetcher().identity(
        emulated(f"gs://{bucket}/single.bin", gcs, **{key: service_account_json()})
    )


async def test_credentials_file_is_accepted(gcs: GcsEmulator, bucket: str, tmp_path: Path) -> None:
    """GOOGLE_APPLICATION_CREDENTIALS naming a service-account file is accepted."""
    path = tmp_path / "sa.json"
    path.write_text(service_account_json())
    creds = {"GOOGLE_APPLICATION_CREDENTIALS": str(path)}
    assert await GcsFetcher().identity(emulated(f"gs://{bucket}/single.bin", gcs, **creds))


async def test_broken_credentials_are_invalid_without_the_value(gcs: GcsEmulator, bucket: str) -> None:
    """Credentials JSON that does not parse is an InvalidError naming the key, never the content."""
    secret = '{"type": "service_account", "private_key": "s3cr3t-value"'
    with pytest.raises(InvalidError) as caught:
        await GcsFetcher().identity(
            emulated(f"gs://{bucket}/single.bin", gcs, GOOGLE_APPLICATION_CREDENTIALS_JSON=secret)
        )
    assert "GOOGLE_APPLICATION_CREDENTIALS_JSON" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert caught.value.__cause__ is None


async def test_missing_credentials_file_is_invalid(tmp_path: Path) -> None:
    """GOOGLE_APPLICATION_CREDENTIALS naming no file is an InvalidError naming the key."""
    creds = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "absent.json")}
    with pytest.raises(InvalidError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        await GcsFetcher().identity(target("gs://bucket/x", **creds))


async def test_unreachable_store_is_retryable() -> None:
    """A store that refuses connections is a RetryableError naming the URI, after a bounded retry."""
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RetryableError, match="gs://bucket/x"):
        await GcsFetcher(retry_timeout_s=0.5).identity(target("gs://bucket/x", STORAGE_EMULATOR_HOST=closed))


@pytest.mark.parametrize(
    "error",
    [
        api_exceptions.Unauthorized("no"),  # type: ignore[no-untyped-call]
        api_exceptions.Forbidden("no"),  # type: ignore[no-untyped-call]
    ],
)
def test_refused_access_is_invalid_naming_the_uri(error: Exception) -> None:
    """HTTP 401/403 from GCS become an InvalidError that names the URI and the status."""
    with (
        pytest.raises(InvalidError, match=r"access to gs://b/m was refused \(HTTP 40[13]\)"),
        _errors_named("gs://b/m"),
    ):
        raise error


@pytest.mark.parametrize("uri", ["gs://", "gs:///path", "s3://b/x"])
def test_malformed_uris_are_invalid(uri: str) -> None:
    """A gs URI without a bucket is an InvalidError on spec.storageUri."""
    with pytest.raises(InvalidError) as caught:
        parse_gcs_uri(uri)
    assert caught.value.field == "spec.storageUri"
