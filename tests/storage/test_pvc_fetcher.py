"""PvcFetcher with a temp root standing in for the claim mounts."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.services.storage.fetchers.base import FetchTarget
from modelplane.services.storage.fetchers.pvc import PvcFetcher


@pytest.fixture
def root(tmp_path: Path) -> Path:
    model = tmp_path / "mounts" / "models-claim" / "iris" / "v1"
    model.mkdir(parents=True)
    (model / "model-settings.json").write_text("{}")
    (tmp_path / "mounts" / "other-claim").mkdir()
    (tmp_path / "secret.txt").write_text("not yours")
    return tmp_path / "mounts"


def target(uri: str) -> FetchTarget:
    return FetchTarget(uri=uri, scheme="pvc")


async def test_path_inside_claim_is_served_in_place(root: Path) -> None:
    """pvc://claim/path resolves to <root>/claim/path without copying."""
    path = await PvcFetcher(root).locate(target("pvc://models-claim/iris/v1"))
    assert path == (root / "models-claim" / "iris" / "v1").resolve()
    assert (path / "model-settings.json").exists()


async def test_claim_alone_is_its_root(root: Path) -> None:
    """pvc://claim (no path) is the whole volume."""
    assert await PvcFetcher(root).locate(target("pvc://models-claim")) == (root / "models-claim").resolve()


async def test_missing_path_names_claim_and_path(root: Path) -> None:
    """A path that does not exist is a NotFoundError naming the claim and the path."""
    with pytest.raises(NotFoundError) as caught:
        await PvcFetcher(root).locate(target("pvc://models-claim/iris/v9"))
    assert "'models-claim'" in str(caught.value)
    assert "'iris/v9'" in str(caught.value)


async def test_missing_claim_is_not_found(root: Path) -> None:
    """A claim that is not mounted is a NotFoundError naming it."""
    with pytest.raises(NotFoundError, match="'absent'"):
        await PvcFetcher(root).locate(target("pvc://absent/x"))


@pytest.mark.parametrize(
    "uri",
    ["pvc://models-claim/../secret.txt", "pvc://models-claim/iris/../../other-claim", "pvc://../x"],
)
async def test_dotdot_escapes_are_invalid(root: Path, uri: str) -> None:
    """'..' in a pvc:// URI is an InvalidError on spec.storageUri."""
    with pytest.raises(InvalidError) as caught:
        await PvcFetcher(root).locate(target(uri))
    assert caught.value.field == "spec.storageUri"


async def test_symlink_out_of_the_claim_is_invalid(root: Path) -> None:
    """A symlink inside the volume that points out of the claim is refused."""
    (root / "models-claim" / "sneaky").symlink_to(root.parent)
    with pytest.raises(InvalidError, match="outside"):
        await PvcFetcher(root).locate(target("pvc://models-claim/sneaky/secret.txt"))


@pytest.mark.parametrize("uri", ["pvc://", "pvc:///path", "pvc://Bad_Claim/x"])
async def test_malformed_claim_is_invalid(root: Path, uri: str) -> None:
    """A missing or non-DNS claim name is an InvalidError."""
    with pytest.raises(InvalidError, match="claim name"):
        await PvcFetcher(root).locate(target(uri))
