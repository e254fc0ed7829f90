"""Summing a model's load over the processes that report it (gateways, dataflow workers)."""

from __future__ import annotations

from modelplane.services.autoscaler.load import LoadBook, LoadSample


def sample(in_flight: int = 0, held: int = 0, requests: int = 0, window: float = 1.0) -> LoadSample:
    return LoadSample(in_flight=in_flight, held=held, requests=requests, window_seconds=window)


def test_several_gateways_are_summed_held_included() -> None:
    """Concurrency is in flight plus held, summed over every source's latest sample."""
    book = LoadBook(stale_after=3)
    book.record("iris", "gw-1", sample(in_flight=2, held=1), now=0)
    book.record("iris", "gw-2", sample(in_flight=4), now=0.5)
    book.record("iris", "gw-1", sample(in_flight=1), now=1)  # replaces gw-1's earlier sample
    assert book.metric("iris", "concurrency", now=1) == 5
    assert book.metric("other", "concurrency", now=1) == 0


def test_a_quiet_source_counts_as_zero() -> None:
    """A source that stopped reporting drops out after stale_after seconds."""
    book = LoadBook(stale_after=3)
    book.record("iris", "gw-1", sample(in_flight=3), now=0)
    book.record("iris", "gw-2", sample(in_flight=2), now=2)
    assert book.metric("iris", "concurrency", now=3) == 5
    assert book.metric("iris", "concurrency", now=4) == 2
    assert book.sources("iris") == 1


def test_rps_is_requests_over_each_window() -> None:
    """rps: each source's requests over its own window, summed."""
    book = LoadBook(stale_after=3)
    book.record("iris", "gw-1", sample(requests=10, window=2.0), now=0)
    book.record("iris", "gw-2", sample(requests=3, window=1.0), now=0)
    assert book.metric("iris", "rps", now=0) == 8
