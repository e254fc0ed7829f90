"""Local storage paths stay inside the allowed roots; a model folder copy never leaves its folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.libs.local_paths import (
    LocalRoots,
    copy_confined,
    default_roots,
    ensure_unchanged,
    local_path_of,
    parse_roots,
)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    (folder / ".modelplane" / "auth").mkdir(parents=True)
    (folder / ".modelplane" / "models" / "iris").mkdir(parents=True)
    (folder / "models" / "iris").mkdir(parents=True)
    return folder


@pytest.fixture
def roots(work: Path) -> LocalRoots:
    state = work / ".modelplane"
    return LocalRoots.for_state(default_roots(state, cwd=work), state)


def test_roots_parse_from_pathsep_or_commas(tmp_path: Path) -> None:
    """MODELPLANE_STORAGE_LOCAL_ROOTS takes os.pathsep- or comma-separated folders."""
    value = f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}, {tmp_path / 'c'},"
    assert parse_roots(value) == (tmp_path / "a", tmp_path / "b", tmp_path / "c")


def test_only_paths_and_file_uris_are_local() -> None:
    """Plain paths and file:// name a local path; other schemes do not."""
    assert local_path_of("file:///m") == "/m"
    assert local_path_of("./m") == "./m"
    assert local_path_of("s3://b/k") is None
    assert local_path_of("pvc://claim/x") is None


def test_the_default_roots_allow_the_work_folder_and_state_models(roots: LocalRoots, work: Path) -> None:
    """The working folder and <state dir>/models are allowed."""
    assert roots.confine(str(work / "models" / "iris")) == work / "models" / "iris"
    assert (
        roots.confine(str(work / ".modelplane" / "models" / "iris"))
        == work / ".modelplane" / "models" / "iris"
    )


@pytest.mark.parametrize(
    "path", ["/etc", "/", "{work}/.modelplane", "{work}/.modelplane/auth", "{work}/models/../.."]
)
def test_host_and_state_paths_are_refused(roots: LocalRoots, work: Path, path: str) -> None:
    """Paths outside the roots, and the state dir inside a root, are InvalidError on spec.storageUri."""
    with pytest.raises(InvalidError) as caught:
        roots.confine(path.format(work=work))
    assert caught.value.field == "spec.storageUri"


def test_a_root_at_the_state_dir_still_hides_its_credentials(work: Path) -> None:
    """Listing the state dir itself as a root opens its models, never auth/ or secrets/."""
    state = work / ".modelplane"
    roots = LocalRoots.for_state([state], state)
    assert roots.confine(str(state / "models" / "iris")) == state / "models" / "iris"
    for name in ("auth", "secrets", "nats"):
        with pytest.raises(InvalidError):
            roots.confine(str(state / name))


def test_symlinks_are_resolved_before_the_check(roots: LocalRoots, work: Path) -> None:
    """A link inside a root to /etc or to the state dir is refused; one to a sibling is fine."""
    (work / "models" / "etc").symlink_to("/etc")
    (work / "models" / "auth").symlink_to(work / ".modelplane" / "auth")
    (work / "models" / "alias").symlink_to(work / "models" / "iris")
    for name in ("etc", "auth"):
        with pytest.raises(InvalidError):
            roots.confine(str(work / "models" / name))
    assert roots.confine(str(work / "models" / "alias")) == work / "models" / "iris"


def test_copy_refuses_a_symlink_to_a_host_file(tmp_path: Path) -> None:
    """A model folder holding a link to /etc/passwd is refused and nothing is left at the target."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.joblib").write_bytes(b"weights")
    (model / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(InvalidError) as caught:
        copy_confined(model, tmp_path / "repo")
    assert "passwd" in caught.value.message
    assert not (tmp_path / "repo").exists()


def test_copy_refuses_a_symlinked_folder_outside(tmp_path: Path) -> None:
    """A link to a folder outside the model folder is refused too (its files are never copied)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s3cr3t")
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "data").symlink_to(outside)
    with pytest.raises(InvalidError):
        copy_confined(model, tmp_path / "repo")
    assert not list(tmp_path.glob("repo/**/secret.txt"))


def test_copy_follows_links_that_stay_inside(tmp_path: Path) -> None:
    """Links within the model folder are copied as their content (as copytree(symlinks=False) did)."""
    model = tmp_path / "model"
    (model / "v1").mkdir(parents=True)
    (model / "v1" / "model.joblib").write_bytes(b"weights")
    (model / "current").symlink_to("v1")
    (model / "model.joblib").symlink_to(model / "v1" / "model.joblib")
    copy_confined(model, tmp_path / "repo")
    assert (tmp_path / "repo" / "current" / "model.joblib").read_bytes() == b"weights"
    assert not (tmp_path / "repo" / "model.joblib").is_symlink()
    assert (tmp_path / "repo" / "model.joblib").read_bytes() == b"weights"


def test_a_path_swapped_for_a_symlink_is_refused(tmp_path: Path) -> None:
    """A checked real path that has become a symlink (to /etc) since the check is refused."""
    model = tmp_path / "model"
    model.mkdir()
    ensure_unchanged(model)
    model.rmdir()
    model.symlink_to("/etc")
    with pytest.raises(InvalidError, match="symlink"):
        ensure_unchanged(model)


def test_copy_refuses_fifos_and_loops(tmp_path: Path) -> None:
    """A FIFO (which would block a reader) and a link loop are refused, not followed."""
    model = tmp_path / "model"
    model.mkdir()
    os.mkfifo(model / "pipe")
    with pytest.raises(InvalidError, match="FIFO"):
        copy_confined(model, tmp_path / "repo")
    (model / "pipe").unlink()
    (model / "loop").symlink_to(model)
    with pytest.raises(InvalidError, match="loop"):
        copy_confined(model, tmp_path / "repo")
