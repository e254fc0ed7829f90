"""`up` keeps its state private (0700) and tells the services which local folders models may use."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from modelplane.libs.local_paths import LOCAL_ROOTS_ENV, prepare_state_dir
from modelplane.up.stack import Stack, UpOptions


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_secrets_and_auth_folders_are_owner_only(tmp_path: Path) -> None:
    """The state dir, secrets/ and auth/ are 0700, even when they existed with looser modes."""
    state = tmp_path / ".modelplane"
    (state / "secrets").mkdir(parents=True, mode=0o755)
    state.chmod(0o755)
    (state / "secrets").chmod(0o777)
    prepare_state_dir(state)
    assert mode(state) == 0o700
    assert mode(state / "secrets") == 0o700
    assert mode(state / "auth") == 0o700
    assert (state / "models").is_dir()


def test_up_passes_its_folder_and_state_models_as_the_roots(tmp_path: Path) -> None:
    """The services get MODELPLANE_STORAGE_LOCAL_ROOTS = the folder up runs in and <state>/models."""
    state = tmp_path / "work" / ".modelplane"
    stack = Stack(UpOptions(state_dir=state, nats_url="nats://127.0.0.1:1", work_dir=tmp_path / "work"))
    env = stack._env()
    assert env[LOCAL_ROOTS_ENV] == os.pathsep.join([str(tmp_path / "work"), str(state / "models")])
    assert env["MODELPLANE_STATE_DIR"] == str(state)
