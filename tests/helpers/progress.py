"""A storage ``Progress`` that remembers what a fetcher told it (for assertions)."""

from __future__ import annotations


class RecordingProgress:
    def __init__(self) -> None:
        self.totals: list[int] = []
        self.done = 0

    def total(self, total_bytes: int) -> None:
        self.totals.append(total_bytes)

    def advance(self, n_bytes: int) -> None:
        self.done += n_bytes
