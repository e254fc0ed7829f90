"""StorageHandler: local paths and file:// URIs, unsupported schemes, missing paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.services.storage.fetchers import default_registry
from modelplane.services.storage.handler import StorageHandler


@pytest.fixture
def handler() -> StorageHandler:
    return StorageHandler(default_registry())


async def test_absolute_path_is_returned(handler: StorageHandler, tmp_path: Path) -> None:
    """A plain absolute path that exists comes back as itself."""
    (tmp_path / "m").mkdir()
    assert await handler.fetch(str(tmp_path / "m")) == tmp_path / "m"


async def test_file_uri_absolute(handler: StorageHandler, tmp_path: Path) -> None:
    """file:///abs/path resolves to /abs/path."""
    (tmp_path / "m").mkdir()
    assert await handler.fetch(f"file://{tmp_path / 'm'}") == tmp_path / "m"


async def test_relative_paths_resolve_against_cwd(
    handler: StorageHandler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative paths, bare or as file://rel, resolve against the working directory."""
    (tmp_path / "models" / "iris").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert await handler.fetch("models/iris") == tmp_path / "models" / "iris"
    assert await handler.fetch("file://models/iris") == tmp_path / "models" / "iris"


async def test_single_file_is_allowed(handler: StorageHandler, tmp_path: Path) -> None:
    """An artifact may be a single file."""
    (tmp_path / "model.joblib").write_bytes(b"x")
    assert await handler.fetch(str(tmp_path / "model.joblib")) == tmp_path / "model.joblib"


async def test_unsupported_scheme_is_invalid(handler: StorageHandler) -> None:
    """An unknown scheme is an InvalidError on spec.storageUri listing what is supported."""
    with pytest.raises(InvalidError) as caught:
        await handler.fetch("s3://bucket/iris")
    assert caught.value.field == "spec.storageUri"
    assert "unsupported scheme 's3' (supported: file, local path)" in caught.value.message


async def test_missing_path_is_not_found(handler: StorageHandler, tmp_path: Path) -> None:
    """A path that does not exist is a NotFoundError naming the path."""
    with pytest.raises(NotFoundError) as caught:
        await handler.fetch(str(tmp_path / "nope"))
    assert str(tmp_path / "nope") in caught.value.message


async def test_empty_uri_is_invalid(handler: StorageHandler) -> None:
    """An empty URI is an InvalidError on spec.storageUri."""
    with pytest.raises(InvalidError) as caught:
        await handler.fetch("  ")
    assert caught.value.field == "spec.storageUri"
