"""Seldon's join types, decided from which references are satisfied right now.

- inner: every reference; until then the join is partial (it waits, or times out);
- outer: every reference fires at once; with some, it is partial and fires with what arrived
  once its window has passed (or nothing can bring the rest);
- any: the first satisfied reference fires it.

An empty list of references (a step without triggers) always holds.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence


class JoinState(enum.Enum):
    NONE = "none"  # nothing arrived
    PARTIAL = "partial"  # some arrived; inner/outer wait for the rest
    READY = "ready"


def join_state(join_type: str, satisfied: Sequence[bool]) -> JoinState:
    if not satisfied or all(satisfied):
        return JoinState.READY
    if not any(satisfied):
        return JoinState.NONE
    return JoinState.READY if join_type == "any" else JoinState.PARTIAL
