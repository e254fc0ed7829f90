"""Which host paths a Model's local ``storageUri`` may name, and how a model folder is copied.

Design: a local path or ``file://`` URI is served in place and then copied into a model
repository that model code reads, so whatever it names becomes readable by that code. It is
therefore confined:

- it must resolve (``realpath``: every symlink followed, ``..`` collapsed) inside one of the
  allowed roots (``MODELPLANE_STORAGE_LOCAL_ROOTS``; by default the folder ``up`` was started
  from and ``<state dir>/models``);
- it must not resolve into a protected folder (the state dir: auth tokens, secrets, NATS store,
  replicas, cache, logs, volumes), even when an allowed root contains it (the default root ``.``
  contains ``.modelplane``!), unless an allowed root lies inside that protected folder and holds
  the path (``<state dir>/models`` is allowed, the rest of ``<state dir>`` is not);
- it must never resolve into a forbidden folder (the state dir's auth, secrets, nats, cache,
  replicas and logs, and the storage service's secrets and cache folders wherever they are),
  whatever the roots say: an operator who lists the state dir itself as a root still does not
  hand out its tokens.

The api checks this at apply time (400 naming ``spec.storageUri``) and the storage service again
at fetch time, because a symlink can be created after the apply. ``copy_confined`` is the copy
the agent makes into its model repository: symlinks are followed only when they stay inside the
copied folder, and anything else (a link out of it, a device, a FIFO, a socket) stops the copy
with an error naming the entry, so nothing outside the folder is ever copied.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelplane.libs.errors import InvalidError

STORAGE_FIELD = "spec.storageUri"
LOCAL_ROOTS_ENV = "MODELPLANE_STORAGE_LOCAL_ROOTS"
# Folders of the state dir that hold credentials: owner-only (0700), like the state dir itself.
PRIVATE_FOLDERS = ("secrets", "auth")
# Folders of the state dir no storageUri may reach, even under a root that contains them.
STATE_FORBIDDEN = ("auth", "secrets", "nats", "cache", "replicas", "logs")
FILE_PREFIX = "file://"
# The folder under the state dir that is an allowed root by default (models kept with the state).
MODELS_FOLDER = "models"
# What the storage registry routes by (RFC 3986 scheme + "://"); anything else is a path.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


def parse_roots(value: str) -> tuple[Path, ...]:
    """``a:b`` or ``a,b`` (os.pathsep or commas) -> absolute paths; empty items are skipped."""
    items = value.replace(",", os.pathsep).split(os.pathsep)
    return tuple(Path(item.strip()).expanduser().absolute() for item in items if item.strip())


def default_roots(state_dir: Path, cwd: Path | None = None) -> tuple[Path, ...]:
    """What ``MODELPLANE_STORAGE_LOCAL_ROOTS`` means when unset: the working folder and <state>/models."""
    return ((cwd or Path.cwd()).absolute(), state_dir.absolute() / MODELS_FOLDER)


def local_path_of(uri: str) -> str | None:
    """The path a local or ``file://`` URI names ("" when it names none); None for other schemes."""
    uri = uri.strip()
    if uri.startswith(FILE_PREFIX):
        return uri[len(FILE_PREFIX) :]
    return None if _SCHEME.match(uri) else uri


@dataclass(frozen=True, slots=True)
class LocalRoots:
    """The allowed roots, the protected and the forbidden folders; ``confine`` applies the rule above."""

    roots: tuple[Path, ...]
    protected: tuple[Path, ...] = ()
    forbidden: tuple[Path, ...] = ()

    @classmethod
    def of(
        cls, roots: Iterable[Path], protected: Iterable[Path] = (), forbidden: Iterable[Path] = ()
    ) -> LocalRoots:
        # Resolved once: a root given through a symlink still contains what it points at.
        return cls(
            tuple(_real(r) for r in roots),
            tuple(_real(p) for p in protected),
            tuple(_real(f) for f in forbidden),
        )

    @classmethod
    def for_state(cls, roots: Iterable[Path], state_dir: Path, forbidden: Iterable[Path] = ()) -> LocalRoots:
        """``roots``, with ``state_dir`` protected and its credential and state folders forbidden."""
        inside = [state_dir / name for name in STATE_FORBIDDEN]
        return cls.of(roots, protected=[state_dir], forbidden=[*inside, *forbidden])

    def describe(self) -> str:
        return ", ".join(str(r) for r in self.roots) or "(none)"

    def confine(self, raw: str) -> Path:
        """The real path of ``raw``; InvalidError naming ``spec.storageUri`` when it is not allowed.

        Relative paths resolve against the working directory (what the storage service does).
        Blocking (it reads symlinks): call it through ``asyncio.to_thread`` in async code.
        """
        if not raw or "\x00" in raw:
            raise InvalidError("the storage URI names no usable path", field=STORAGE_FIELD)
        path = _real(Path(raw).expanduser())
        holders = [root for root in self.roots if path.is_relative_to(root)]
        if not holders:
            raise InvalidError(
                f"{raw} is outside the allowed local storage roots ({self.describe()}); "
                "set MODELPLANE_STORAGE_LOCAL_ROOTS to allow another folder",
                field=STORAGE_FIELD,
            )
        for never in self.forbidden:
            if path.is_relative_to(never):
                raise InvalidError(
                    f"{raw} is inside {never}, which holds credentials or state models may not read",
                    field=STORAGE_FIELD,
                )
        for guarded in self.protected:
            # Only a root inside the protected folder (such as <state>/models) opens it.
            inner = [r for r in holders if r.is_relative_to(guarded)]
            if path.is_relative_to(guarded) and not inner:
                raise InvalidError(
                    f"{raw} is inside the state directory {guarded}, which models may not read "
                    f"(keep models in {guarded / MODELS_FOLDER} or outside the state directory)",
                    field=STORAGE_FIELD,
                )
        return path


def prepare_state_dir(state_dir: Path) -> None:
    """Create the state dir, its secrets/ and auth/ folders (0700) and models/ (an allowed root).

    Existing folders are tightened to 0700 too: they hold tokens, credentials and the NATS store,
    and nothing but this user's processes needs to read them. Blocking.
    """
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    for name in PRIVATE_FOLDERS:
        folder = state_dir / name
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)
    (state_dir / MODELS_FOLDER).mkdir(exist_ok=True)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def ensure_unchanged(path: Path) -> None:
    """InvalidError unless ``path`` is still its own real path (no symlink on the way).

    The storage service answers with real paths it checked; if one has become (or now passes
    through) a symlink, someone swapped it since, and copying it would copy what it points at.
    Blocking.
    """
    if _real(path) != path.absolute():
        raise InvalidError(
            f"{path} changed into a symlink after the storage service checked it; refused",
            field=STORAGE_FIELD,
        )


def copy_confined(source: Path, dest: Path) -> None:
    """Copy the folder ``source`` to the new folder ``dest`` without leaving ``source``.

    Symlinks are followed only when their real target lies inside ``source`` (then the content
    is copied, as ``copytree(symlinks=False)`` would); a link leading out of it, a broken link, a
    device, FIFO or socket raises InvalidError naming the entry and nothing is left at ``dest``.
    Blocking.
    """
    root = _real(source)
    try:
        _copy_tree(root, dest, root, (root,))
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _copy_tree(folder: Path, dest: Path, root: Path, chain: Sequence[Path]) -> None:
    # ``folder`` is a real path inside ``root``; ``chain`` holds it and its real ancestors up to
    # ``root``, so a link back to one of them (a loop) is caught.
    dest.mkdir(parents=True, exist_ok=False)
    shutil.copystat(folder, dest)
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        link = Path(entry.path)
        real = _real(link)
        shown = link.relative_to(root)
        if entry.is_symlink() and not real.is_relative_to(root):
            raise InvalidError(
                f"model folder entry {shown} is a symlink leading outside the model folder; refused",
                field=STORAGE_FIELD,
            )
        try:
            mode = os.stat(real).st_mode
        except FileNotFoundError:
            raise InvalidError(
                f"model folder entry {shown} is a broken symlink", field=STORAGE_FIELD
            ) from None
        if stat.S_ISDIR(mode):
            if real in chain:
                raise InvalidError(f"model folder entry {shown} is a symlink loop", field=STORAGE_FIELD)
            _copy_tree(real, dest / entry.name, root, (*chain, real))
        elif stat.S_ISREG(mode):
            shutil.copy2(real, dest / entry.name)
        else:
            raise InvalidError(
                f"model folder entry {shown} is not a regular file or folder (device, FIFO or socket)",
                field=STORAGE_FIELD,
            )
