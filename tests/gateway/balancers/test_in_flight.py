"""InFlight: counts per key and replica, summed both ways, nothing left behind."""

from __future__ import annotations

from modelplane.libs.dataplane.balancers.in_flight import InFlight


def test_counts_per_pair_key_and_replica() -> None:
    """One begin counts once in the pair, its key and its replica."""
    loads = InFlight()
    loads.begin("iris:1", "s.0")
    loads.begin("iris:1", "s.0")
    loads.begin("wine:1", "s.0")
    loads.begin("iris:1", "s.1")
    assert loads.of("iris:1", "s.0") == 2
    assert loads.of_key("iris:1") == 3
    assert loads.of_replica("s.0") == 3
    assert loads.by_replica() == {"s.0": 3, "s.1": 1}


def test_ended_requests_leave_no_entries() -> None:
    """After every begin has its end, all counts are zero and no entry remains."""
    loads = InFlight()
    loads.begin("iris:1", "s.0")
    loads.end("iris:1", "s.0")
    assert loads.of("iris:1", "s.0") == 0
    assert loads.by_key() == {}
    assert loads.by_replica() == {}


def test_snapshots_are_copies() -> None:
    """A snapshot does not change under later traffic."""
    loads = InFlight()
    loads.begin("iris:1", "s.0")
    snapshot = loads.by_key()
    loads.end("iris:1", "s.0")
    assert snapshot == {"iris:1": 1}
