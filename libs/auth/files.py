"""Where credentials live in the state dir, and writing them privately.

``<state dir>/auth/`` (0700) holds ``admin.token`` (0600), the plaintext admin token ``up``
makes on its first start and the CLI reads; other credential files (NATS users) go beside it.
Files are written to a temporary name with mode 0600 from the start, then renamed, so no reader
ever sees a half-written file or one with wider permissions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

AUTH_DIR: Final = "auth"
ADMIN_TOKEN_FILE: Final = "admin.token"
# The state dir `up` uses when neither --state-dir nor MODELPLANE_STATE_DIR says otherwise.
DEFAULT_STATE_DIR: Final = ".modelplane"
STATE_DIR_ENV: Final = "MODELPLANE_STATE_DIR"


def state_dir_from_env() -> Path:
    """The state dir the CLI and `up` agree on: MODELPLANE_STATE_DIR, else ./.modelplane."""
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def auth_dir(state_dir: Path) -> Path:
    return state_dir / AUTH_DIR


def admin_token_path(state_dir: Path) -> Path:
    return auth_dir(state_dir) / ADMIN_TOKEN_FILE


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and make it 0700 (also when it existed)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically."""
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_private(path: Path) -> str | None:
    """The stripped content of ``path``, or None when it does not exist or cannot be read."""
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
