"""The collector settings the scheduler process applies at start."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from modelplane.libs.gc_tuning import tune_for_large_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_sets_the_young_threshold_and_keeps_the_older_ones(restored_gc: None) -> None:
    """The young threshold becomes the setting; the older generations keep theirs."""
    _, older, oldest = gc.get_threshold()
    tune_for_large_heap(50_000)
    assert gc.get_threshold() == (50_000, older, oldest)


def test_freezes_what_exists(restored_gc: None) -> None:
    """Objects that exist at tuning time move to the permanent generation."""
    tune_for_large_heap(0)
    assert gc.get_freeze_count() > 0


def test_zero_keeps_the_thresholds(restored_gc: None) -> None:
    """A threshold of 0 leaves the interpreter's thresholds alone."""
    before = gc.get_threshold()
    tune_for_large_heap(0)
    assert gc.get_threshold() == before
