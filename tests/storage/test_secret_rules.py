"""Who may use a secret, where a secret may live, and what never shows a presigned URL's signature."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.libs.local_paths import LocalRoots
from modelplane.libs.uris import redact_uri
from modelplane.services.storage.cache import StorageCache
from modelplane.services.storage.fetchers import default_registry
from modelplane.services.storage.handler import FetchProgress, ProgressKey, StorageHandler
from modelplane.services.storage.secrets import SecretStore
from tests.helpers.http_server import FileServer

VALUE = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
SIGNATURE = "X-Amz-Signature=3f1c0ffee0ddba11deadbeef5ca1ab1e"


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "state" / "secrets"
    folder.mkdir(parents=True)
    (tmp_path / "state" / "auth").mkdir()
    (tmp_path / "state" / "auth" / "admin.token").write_text("mpt_admin\n")
    return folder


# ---- where a secret may live -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["../auth/admin", "a/b", "/etc/passwd", "..", ".hidden"])
async def test_names_cannot_walk_out_of_the_secrets_folder(secrets_dir: Path, name: str) -> None:
    """A name with '/', '..' or a leading dot is refused on spec.secretName."""
    with pytest.raises(InvalidError) as caught:
        await SecretStore(secrets_dir).resolve(name)
    assert caught.value.field == "spec.secretName"


async def test_a_secret_linking_out_of_the_folder_is_refused(secrets_dir: Path) -> None:
    """<name>.env as a symlink to a file outside the secrets folder is refused, never read."""
    elsewhere = secrets_dir.parent / "auth" / "cloud.env"
    elsewhere.write_text(f"AWS_SECRET_ACCESS_KEY={VALUE}\n")
    (secrets_dir / "cloud.env").symlink_to(elsewhere)
    with pytest.raises(InvalidError) as caught:
        await SecretStore(secrets_dir).resolve("cloud")
    assert VALUE not in str(caught.value)


async def test_a_key_file_linking_out_of_its_folder_is_refused(secrets_dir: Path) -> None:
    """A key file of a folder secret that links outside the folder is refused."""
    (secrets_dir / "s3").mkdir()
    (secrets_dir / "s3" / "AWS_SECRET_ACCESS_KEY").symlink_to(secrets_dir.parent / "auth" / "admin.token")
    with pytest.raises(InvalidError):
        await SecretStore(secrets_dir).resolve("s3")


# ---- which models may use it -----------------------------------------------------------------


async def test_a_secret_may_list_the_models_that_use_it(secrets_dir: Path) -> None:
    """MODELPLANE_ALLOWED_MODELS: listed names and patterns may use it, others (and no model) may not."""
    (secrets_dir / "s3.env").write_text(
        f"AWS_SECRET_ACCESS_KEY={VALUE}\nMODELPLANE_ALLOWED_MODELS=iris, fraud-*\n"
    )
    store = SecretStore(secrets_dir)
    for model in ("iris", "fraud-v2"):
        assert dict(await store.resolve("s3", model)) == {"AWS_SECRET_ACCESS_KEY": VALUE}
    for model in ("other", "", "iris2"):
        with pytest.raises(InvalidError) as caught:
            await store.resolve("s3", model)
        assert caught.value.field == "spec.secretName"
        assert VALUE not in str(caught.value)


async def test_a_folder_secret_lists_models_in_a_key_file(secrets_dir: Path) -> None:
    """In a folder secret the list is the key file MODELPLANE_ALLOWED_MODELS."""
    (secrets_dir / "hf").mkdir()
    (secrets_dir / "hf" / "HF_TOKEN").write_text("hf_value\n")
    (secrets_dir / "hf" / "MODELPLANE_ALLOWED_MODELS").write_text("llm\n")
    store = SecretStore(secrets_dir)
    assert dict(await store.resolve("hf", "llm")) == {"HF_TOKEN": "hf_value"}
    with pytest.raises(InvalidError):
        await store.resolve("hf", "iris")


# ---- presigned URLs -------------------------------------------------------------------------


def test_redacted_uris_keep_host_and_path_only() -> None:
    """Userinfo is dropped, query string and fragment replaced; scheme, host and path stay."""
    assert redact_uri(f"https://u:pw@h:1/b/m.tgz?{SIGNATURE}#x") == "https://h:1/b/m.tgz?REDACTED#REDACTED"
    assert redact_uri("s3://bucket/key") == "s3://bucket/key"
    assert redact_uri("/local/path") == "/local/path"


@pytest.fixture
def files(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "model.bin").write_bytes(b"weights")
    server = FileServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Sink:
    def __init__(self) -> None:
        self.events: list[FetchProgress] = []

    async def publish(self, event: FetchProgress) -> None:
        self.events.append(event)


@pytest.fixture
async def handler(tmp_path: Path, secrets_dir: Path) -> AsyncIterator[tuple[StorageHandler, Sink]]:
    cache = StorageCache(tmp_path / "cache", 1 << 30)
    await cache.start()
    sink = Sink()
    registry = default_registry(tmp_path / "volumes", LocalRoots.of([tmp_path / "models"]))
    try:
        yield (
            StorageHandler(registry, cache, SecretStore(secrets_dir), progress=sink, progress_interval=0.01),
            sink,
        )
    finally:
        await cache.close()


async def test_a_presigned_url_signature_is_never_logged_or_reported(
    handler: tuple[StorageHandler, Sink], files: FileServer
) -> None:
    """Neither log lines, progress events nor error messages carry a presigned URL's query string."""
    storage, sink = handler
    signature = SIGNATURE.split("=", 1)[1]
    key = ProgressKey(model="iris", version=1)
    with capture_logs() as logs:
        await storage.fetch(f"{files.url}/model.bin?{SIGNATURE}", progress_key=key)
        with pytest.raises(NotFoundError) as caught:
            await storage.fetch(f"{files.url}/missing.bin?{SIGNATURE}", progress_key=key)
    assert signature not in str(caught.value)
    assert sink.events
    assert all(signature not in event.uri for event in sink.events)
    assert signature not in repr(logs)
