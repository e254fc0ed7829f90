"""Safe unpacking of downloaded archives (.tar, .tar.gz, .tgz, .zip) into a target directory.

An archive comes from somewhere we do not control, so every member is checked before anything is
written: a member whose name is absolute, contains ``..``, or passes through a symlink of the same
archive is rejected, and so is a symlink or hard link whose target would land outside the target
directory, and any device or FIFO member. The first bad member stops the whole unpack with an
``InvalidError`` that names it. Tar extraction additionally runs with Python's ``data`` filter,
which re-checks each path against the real file system while extracting (a second, independent
guard against link tricks the name checks cannot see).

The sizes the members declare are added up before anything is written: an archive whose
unpacked total exceeds ``max_bytes`` (MODELPLANE_STORAGE_MAX_ARTIFACT_BYTES) is refused, so a
small archive of zeros cannot fill the disk. The declared sizes bound what is written: tarfile
writes exactly ``size`` bytes per member, and zipfile stops a member at its declared size (and
fails its CRC check if the data was longer).

Zip files cannot create symlinks through ``zipfile`` (a symlink member is written as a small
regular file holding the target), but a symlink member pointing outside is still rejected so a
tool that later honours it cannot be led astray.
"""

from __future__ import annotations

import posixpath
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from modelplane.libs.errors import InvalidError
from modelplane.services.storage.fetchers.base import ArtifactTooLarge

# Longest first, so "x.tar.gz" is a tar.gz and not a ".gz" of something.
ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tgz", ".tar", ".zip")


def is_archive(name: str) -> bool:
    """True when ``name`` (a file or URL base name) ends with a suffix we unpack."""
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def unpack(archive: Path, dest: Path, *, source: str, max_bytes: int | None = None) -> None:
    """Unpack ``archive`` into the existing directory ``dest``; ``source`` names it in errors.

    ``max_bytes``: the most the unpacked members may add up to (ArtifactTooLarge beyond it).
    Blocking: call it through ``asyncio.to_thread``.
    """
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            _unpack_zip(archive, dest, source, max_bytes)
        else:
            _unpack_tar(archive, dest, source, max_bytes)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        # tarfile's data filter errors (OutsideDestinationError, ...) are TarErrors too.
        raise InvalidError(f"{source} is not a valid archive: {exc}", field="spec.storageUri") from exc


def _unpack_tar(archive: Path, dest: Path, source: str, max_bytes: int | None) -> None:
    with tarfile.open(archive, mode="r:*") as tar:
        members = tar.getmembers()
        _check_total(sum(m.size for m in members if m.isfile()), max_bytes, source)
        symlinks = {_clean(m.name) for m in members if m.issym()}
        for member in members:
            _check_name(member.name, symlinks, source)
            if member.issym():
                _check_link(member.name, member.linkname, relative_to_member=True, source=source)
            elif member.islnk():
                # Hard link targets are archive paths, relative to the archive root.
                _check_link(member.name, member.linkname, relative_to_member=False, source=source)
            elif not (member.isfile() or member.isdir()):
                raise _bad(source, member.name, "is a device or FIFO")
        tar.extractall(dest, members=members, filter="data")


def _unpack_zip(archive: Path, dest: Path, source: str, max_bytes: int | None) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        _check_total(sum(i.file_size for i in infos), max_bytes, source)
        symlinks = {_clean(i.filename) for i in infos if _zip_is_symlink(i)}
        for info in infos:
            _check_name(info.filename, symlinks, source)
            if _zip_is_symlink(info):
                target = zf.read(info).decode("utf-8", errors="replace")
                _check_link(info.filename, target, relative_to_member=True, source=source)
        zf.extractall(dest)


def _check_total(total: int, max_bytes: int | None, source: str) -> None:
    if max_bytes is not None and total > max_bytes:
        raise ArtifactTooLarge(max_bytes, what=f"archive {source} unpacked ({total} bytes)")


def _zip_is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _clean(name: str) -> str:
    # normpath drops "./" segments and trailing slashes ("dir/" and "./dir" are one member).
    return posixpath.normpath(name.replace("\\", "/"))


def _check_name(name: str, symlinks: set[str], source: str) -> None:
    posix = name.replace("\\", "/")
    if posix.startswith("/") or PurePosixPath(posix).is_absolute() or _has_drive(posix):
        raise _bad(source, name, "has an absolute path")
    parts = PurePosixPath(posix).parts
    if ".." in parts:
        raise _bad(source, name, "contains '..'")
    # A member written through a symlink of the same archive could land anywhere the link
    # points; links are only allowed as leaves.
    for depth in range(1, len(parts)):
        if _clean("/".join(parts[:depth])) in symlinks:
            raise _bad(source, name, "goes through a symlink")


def _check_link(name: str, target: str, *, relative_to_member: bool, source: str) -> None:
    posix = target.replace("\\", "/")
    if not posix or posix.startswith("/") or _has_drive(posix):
        raise _bad(source, name, f"links to an absolute path {target!r}")
    base = posixpath.dirname(name.replace("\\", "/")) if relative_to_member else ""
    resolved = posixpath.normpath(posixpath.join(base, posix))
    if resolved == ".." or resolved.startswith("../"):
        raise _bad(source, name, f"links outside the target directory ({target!r})")


def _has_drive(name: str) -> bool:
    # "C:/x" or "C:x": harmless on POSIX, but never a name a model archive needs.
    return len(name) >= 2 and name[1] == ":" and name[0].isalpha()


def _bad(source: str, member: str, why: str) -> InvalidError:
    return InvalidError(f"archive {source} rejected: member {member!r} {why}", field="spec.storageUri")
