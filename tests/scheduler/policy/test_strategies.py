"""strategy_by_name: the configurable server choice, by name."""

from __future__ import annotations

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.services.scheduler.policy.sorters.best_fit import BestFitStrategy
from modelplane.services.scheduler.policy.sorters.spread import SpreadStrategy
from modelplane.services.scheduler.policy.strategies import DEFAULT_STRATEGY, strategy_by_name


def test_known_names() -> None:
    """best-fit and spread resolve to their strategies; best-fit is the default."""
    assert isinstance(strategy_by_name("best-fit"), BestFitStrategy)
    assert isinstance(strategy_by_name("spread"), SpreadStrategy)
    assert DEFAULT_STRATEGY == "best-fit"


def test_unknown_name_is_invalid() -> None:
    """An unknown name raises InvalidError naming the choices."""
    with pytest.raises(InvalidError, match="best-fit, spread") as info:
        strategy_by_name("random")
    assert info.value.field == "server_strategy"
