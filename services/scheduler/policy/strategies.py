"""Server choice strategies by name (the scheduler's MODELPLANE_SCHEDULER_SERVER_STRATEGY)."""

from __future__ import annotations

from modelplane.libs.errors import InvalidError
from modelplane.services.scheduler.policy.base import ServerStrategy
from modelplane.services.scheduler.policy.sorters.best_fit import BestFitStrategy
from modelplane.services.scheduler.policy.sorters.spread import SpreadStrategy

DEFAULT_STRATEGY = BestFitStrategy.name
STRATEGY_NAMES = (BestFitStrategy.name, SpreadStrategy.name)


def strategy_by_name(name: str) -> ServerStrategy:
    """The strategy called ``name`` ("best-fit" or "spread"); InvalidError for anything else."""
    if name == BestFitStrategy.name:
        return BestFitStrategy()
    if name == SpreadStrategy.name:
        return SpreadStrategy()
    raise InvalidError(
        f"unknown server strategy {name!r}; expected one of {', '.join(STRATEGY_NAMES)}",
        field="server_strategy",
    )
