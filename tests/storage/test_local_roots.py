"""At fetch time the storage service refuses local paths outside the roots (defence in depth)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.services.storage.cache import StorageCache
from modelplane.services.storage.fetchers import default_registry
from modelplane.services.storage.handler import StorageHandler
from modelplane.services.storage.secrets import SecretStore
from modelplane.services.storage.settings import StorageSettings


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    (folder / ".modelplane" / "secrets").mkdir(parents=True)
    (folder / ".modelplane" / "secrets" / "s3.env").write_text("AWS_SECRET_ACCESS_KEY=xyz\n")
    (folder / "models" / "iris").mkdir(parents=True)
    return folder


@pytest.fixture
async def handler(work: Path) -> AsyncIterator[StorageHandler]:
    state = work / ".modelplane"
    # What `up` passes: state dir, its secrets/cache/volumes, and the working folder as a root.
    settings = StorageSettings(
        state_dir=state,
        cache_dir=state / "cache",
        secrets_dir=state / "secrets",
        pvc_root=state / "volumes",
        local_roots=os.pathsep.join([str(work), str(state / "models")]),
    )
    cache = StorageCache(settings.cache_dir, settings.cache_max_bytes)
    await cache.start()
    registry = default_registry(settings.pvc_root, settings.local_storage_roots())
    try:
        yield StorageHandler(registry, cache, SecretStore(settings.secrets_dir))
    finally:
        await cache.close()


async def test_an_allowed_folder_is_served(handler: StorageHandler, work: Path) -> None:
    """A folder under the working folder is served in place."""
    assert await handler.fetch(f"file://{work}/models/iris") == work / "models" / "iris"


@pytest.mark.parametrize(
    "uri", ["/etc", "file:///etc/passwd", "{work}/.modelplane/secrets", "{work}/.modelplane"]
)
async def test_host_and_state_paths_are_refused(handler: StorageHandler, work: Path, uri: str) -> None:
    """/etc and the state dir (inside the allowed working folder) are refused on spec.storageUri."""
    with pytest.raises(InvalidError) as caught:
        await handler.fetch(uri.format(work=work))
    assert caught.value.field == "spec.storageUri"


async def test_a_symlink_created_after_the_apply_is_refused(handler: StorageHandler, work: Path) -> None:
    """A model folder replaced by a link to the secrets (after the api accepted it) is refused."""
    (work / "models" / "iris").rmdir()
    (work / "models" / "iris").symlink_to(work / ".modelplane" / "secrets")
    with pytest.raises(InvalidError):
        await handler.fetch(f"{work}/models/iris")
