"""HttpFetcher against a real local HTTP server: files, archives, malicious archives, errors."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelplane.libs.embedded_nats import free_port
from modelplane.libs.errors import InvalidError, NotFoundError, RetryableError
from modelplane.services.storage.fetchers.base import FetchTarget
from modelplane.services.storage.fetchers.http import HttpFetcher
from tests.helpers.http_server import FileServer
from tests.helpers.progress import RecordingProgress


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "model.joblib").write_bytes(b"j" * 5000)
    with tarfile.open(root / "model.tar.gz", "w:gz") as tar:
        add_file(tar, "model-settings.json", b'{"name": "m"}')
        add_file(tar, "sub/model.joblib", b"tarred")
    with zipfile.ZipFile(root / "model.zip", "w") as zf:
        zf.writestr("model-settings.json", b'{"name": "z"}')
        zf.writestr("sub/model.joblib", b"zipped")
    with tarfile.open(root / "evil.tgz", "w:gz") as tar:
        add_file(tar, "fine.txt", b"fine")
        add_file(tar, "../../escaped.txt", b"boom")
    private = root / "private"
    private.mkdir()
    (private / "secret.bin").write_bytes(b"s")
    server = FileServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def target(uri: str) -> FetchTarget:
    return FetchTarget(uri=uri, scheme=uri.split(":", 1)[0], artifact_version="v1")


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    path = tmp_path / "cache" / "entry"
    path.mkdir(parents=True)
    return path


async def test_plain_file_is_saved_under_its_base_name(served: FileServer, dest: Path) -> None:
    """A non-archive URL lands as dest/<base name>, with byte progress."""
    progress = RecordingProgress()
    await HttpFetcher().download(target(f"{served.url}/model.joblib"), dest, progress)
    assert files(dest) == {"model.joblib": b"j" * 5000}
    assert progress.totals == [5000]
    assert progress.done == 5000
    assert served.count("/model.joblib") == 1


async def test_tar_gz_is_unpacked(served: FileServer, dest: Path) -> None:
    """A .tar.gz is unpacked into dest and the archive itself is not kept."""
    await HttpFetcher().download(target(f"{served.url}/model.tar.gz"), dest, RecordingProgress())
    assert files(dest) == {"model-settings.json": b'{"name": "m"}', "sub/model.joblib": b"tarred"}


async def test_zip_is_unpacked(served: FileServer, dest: Path) -> None:
    """A .zip is unpacked into dest."""
    await HttpFetcher().download(target(f"{served.url}/model.zip"), dest, RecordingProgress())
    assert files(dest) == {"model-settings.json": b'{"name": "z"}', "sub/model.joblib": b"zipped"}


async def test_malicious_archive_is_rejected_and_nothing_escapes(served: FileServer, dest: Path) -> None:
    """An archive with a ../ member fails with InvalidError and writes nothing outside dest."""
    with pytest.raises(InvalidError, match=r"member '../../escaped.txt' contains '..'"):
        await HttpFetcher().download(target(f"{served.url}/evil.tgz"), dest, RecordingProgress())
    tmp_root = dest.parent.parent
    assert list(tmp_root.rglob("escaped.txt")) == []
    # The scratch download folder is gone too: the cache gets back an empty directory.
    assert entries(dest) == []


async def test_missing_file_is_not_found(served: FileServer, dest: Path) -> None:
    """HTTP 404 is a NotFoundError for identity and download."""
    t = target(f"{served.url}/nope.tar.gz")
    with pytest.raises(NotFoundError, match=r"nope\.tar\.gz"):
        await HttpFetcher().identity(t)
    with pytest.raises(NotFoundError):
        await HttpFetcher().download(t, dest, RecordingProgress())
    assert entries(dest) == []


async def test_forbidden_is_invalid(served: FileServer, dest: Path) -> None:
    """HTTP 403 is an InvalidError telling the user to check the secret."""
    with pytest.raises(InvalidError, match="denied"):
        await HttpFetcher().download(target(f"{served.url}/private/secret.bin"), dest, RecordingProgress())


async def test_identity_uses_headers_and_changes_with_content(served: FileServer) -> None:
    """identity() uses HEAD only, and changes when the file changes."""
    fetcher = HttpFetcher()
    t = target(f"{served.url}/model.joblib")
    first = await fetcher.identity(t)
    assert "content-length:5000" in first
    assert "version:v1" in first
    assert served.count("/model.joblib") == 0
    (served.root / "model.joblib").write_bytes(b"k" * 5001)
    assert await fetcher.identity(t) != first


async def test_unreachable_server_is_retryable() -> None:
    """A closed port gives a RetryableError naming the URI, not an aiohttp traceback."""
    uri = f"http://127.0.0.1:{free_port()}/model.joblib"
    with pytest.raises(RetryableError, match="could not download"):
        await HttpFetcher(connect_timeout=5).identity(target(uri))


async def test_credentials_in_the_url_stay_out_of_messages(served: FileServer) -> None:
    """A user:password@ part of the URL never appears in an error message."""
    uri = served.url.replace("http://", "http://user:hunter2@") + "/missing.bin"
    with pytest.raises(NotFoundError) as caught:
        await HttpFetcher().identity(target(uri))
    assert "hunter2" not in str(caught.value)


async def test_url_without_host_is_invalid() -> None:
    """An http URI without a host is an InvalidError on spec.storageUri."""
    with pytest.raises(InvalidError) as caught:
        await HttpFetcher().identity(target("http:///x.tar"))
    assert caught.value.field == "spec.storageUri"
