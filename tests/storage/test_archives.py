"""archives.unpack: good archives unpack, members that would escape the target are rejected."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.services.storage.fetchers.archives import is_archive, unpack


def tar_with(path: Path, build: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith(("gz", "tgz")) else "w") as tar:
        build(tar)
    return path


def add_file(tar: tarfile.TarFile, name: str, data: bytes = b"data") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_link(tar: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def zip_with(path: Path, entries: list[tuple[str, bytes, bool]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, symlink in entries:
            info = zipfile.ZipInfo(name)
            if symlink:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, data)
    return path


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """(archive folder, dest) where dest sits inside a parent we can inspect for escapes."""
    src = tmp_path / "src"
    src.mkdir()
    dest = tmp_path / "jail" / "dest"
    dest.mkdir(parents=True)
    return src, dest


def only_dest_exists(dest: Path) -> bool:
    return [p.name for p in dest.parent.iterdir()] == ["dest"] and list(dest.iterdir()) == []


@pytest.mark.parametrize("name", ["m.tar", "m.tar.gz", "m.tgz"])
def test_tar_unpacks_with_layout_and_inner_symlink(sandbox: tuple[Path, Path], name: str) -> None:
    """A well-formed tar unpacks every file, folder and in-tree symlink into dest."""
    src, dest = sandbox

    def build(tar: tarfile.TarFile) -> None:
        add_file(tar, "model-settings.json", b"{}")
        add_file(tar, "weights/part-1.bin", b"w1")
        add_link(tar, "weights/latest.bin", "part-1.bin")

    unpack(tar_with(src / name, build), dest, source="http://x/" + name)
    assert (dest / "model-settings.json").read_bytes() == b"{}"
    assert (dest / "weights" / "latest.bin").read_bytes() == b"w1"


def test_zip_unpacks(sandbox: tuple[Path, Path]) -> None:
    """A well-formed zip unpacks with its folders."""
    src, dest = sandbox
    unpack(zip_with(src / "m.zip", [("a/b.txt", b"b", False), ("c.txt", b"c", False)]), dest, source="z")
    assert (dest / "a" / "b.txt").read_bytes() == b"b"
    assert (dest / "c.txt").read_bytes() == b"c"


def write_through_symlink(tar: tarfile.TarFile) -> None:
    add_link(tar, "dir", ".")
    add_file(tar, "dir/file.txt")


TAR_ATTACKS: dict[str, tuple[Callable[[tarfile.TarFile], None], str]] = {
    "dotdot": (lambda t: add_file(t, "../escape.txt"), "contains '..'"),
    "nested-dotdot": (lambda t: add_file(t, "ok/../../escape.txt"), "contains '..'"),
    "absolute": (lambda t: add_file(t, "/tmp/abs-escape.txt"), "absolute path"),
    "symlink-out": (lambda t: add_link(t, "link", "../../outside"), "links outside"),
    "symlink-absolute": (lambda t: add_link(t, "link", "/etc/passwd"), "absolute path"),
    "hardlink-out": (
        lambda t: add_link(t, "hard", "../outside", tarfile.LNKTYPE),
        "links outside",
    ),
    "write-through-symlink": (write_through_symlink, "goes through a symlink"),
    "fifo": (
        lambda t: add_link(t, "pipe", "", tarfile.FIFOTYPE),
        "device or FIFO",
    ),
}


@pytest.mark.parametrize("attack", sorted(TAR_ATTACKS))
def test_malicious_tar_is_rejected_and_writes_nothing(sandbox: tuple[Path, Path], attack: str) -> None:
    """Escaping tar members raise InvalidError naming the member; nothing is written at all."""
    src, dest = sandbox
    build, why = TAR_ATTACKS[attack]

    def with_good_first(tar: tarfile.TarFile) -> None:
        add_file(tar, "good.txt")
        build(tar)

    with pytest.raises(InvalidError, match=why) as caught:
        unpack(tar_with(src / "evil.tar.gz", with_good_first), dest, source="http://h/evil.tar.gz")
    assert "member" in str(caught.value)
    assert "http://h/evil.tar.gz" in str(caught.value)
    assert caught.value.field == "spec.storageUri"
    assert only_dest_exists(dest)


@pytest.mark.parametrize(
    ("entries", "why"),
    [
        ([("../escape.txt", b"x", False)], "contains '..'"),
        ([("/abs.txt", b"x", False)], "absolute path"),
        ([("link", b"../../outside", True)], "links outside"),
        ([("link", b"/etc/passwd", True)], "absolute path"),
    ],
)
def test_malicious_zip_is_rejected(
    sandbox: tuple[Path, Path], entries: list[tuple[str, bytes, bool]], why: str
) -> None:
    """Escaping zip members (names or symlink targets) raise InvalidError; nothing is written."""
    src, dest = sandbox
    with pytest.raises(InvalidError, match=why):
        unpack(zip_with(src / "evil.zip", [("good.txt", b"g", False), *entries]), dest, source="z")
    assert only_dest_exists(dest)


def test_corrupt_archive_is_invalid(sandbox: tuple[Path, Path]) -> None:
    """Bytes that are not an archive give InvalidError, not a tarfile traceback."""
    src, dest = sandbox
    bad = src / "broken.tar.gz"
    bad.write_bytes(b"this is not gzip")
    with pytest.raises(InvalidError, match="not a valid archive"):
        unpack(bad, dest, source="http://h/broken.tar.gz")


def test_archive_suffixes() -> None:
    """Only .tar, .tar.gz, .tgz and .zip names count as archives."""
    assert all(is_archive(n) for n in ("a.tar", "a.TAR.GZ", "a.tgz", "a.zip"))
    assert not any(is_archive(n) for n in ("a.gz", "model.joblib", "tar"))
