"""Pure rules behind memory booking, scale requests and retry backoff."""

from __future__ import annotations

from modelplane.libs import states
from modelplane.libs.resources import convert
from modelplane.libs.resources.types import Meta, ModelSpec, Server, ServerSpec
from modelplane.proto import resources_pb2
from modelplane.services.scheduler import capacity, converters
from modelplane.services.scheduler.backoff import Backoff
from modelplane.services.scheduler.cluster import ReplicaRecord, ServerRecord
from modelplane.services.scheduler.records import Assignment, ModelRecord, ServerLimits, VersionRecord

MI = 1 << 20


def record(name: str, memory: int, *assignments: tuple[int, int]) -> ModelRecord:
    spec = ModelSpec(storage_uri="file:///m", memory_bytes=memory)
    version = VersionRecord(1, spec, "s", [Assignment("s", index, state) for index, state in assignments])
    return ModelRecord(name, versions=[version])


def replica(index: int, memory: int = 100 * MI, overcommit: int = 0) -> ReplicaRecord:
    return ReplicaRecord("s", index, "i", ("sklearn",), memory, overcommit, "h", "g")


def test_loading_reserves_loaded_holds_failed_and_unloaded_release() -> None:
    """LoadRequested/Loading reserve, Available/Draining/unloading hold, LoadFailed/Unloaded book nothing."""
    placements = {
        "a": record("a", 10 * MI, (0, states.LOAD_REQUESTED)),
        "b": record("b", 20 * MI, (0, states.LOADING)),
        "c": record("c", 30 * MI, (0, states.AVAILABLE)),
        "d": record("d", 40 * MI, (0, states.UNLOAD_REQUESTED)),
        "e": record("e", 50 * MI, (0, states.LOAD_FAILED)),
        "f": record("f", 60 * MI, (0, states.UNLOADED)),
    }
    booked = capacity.book(placements, lambda server: 0)["s.0"]
    assert (booked.reserved, booked.loaded) == (30 * MI, 70 * MI)
    assert booked.models == {"a_1", "b_1", "c_1", "d_1"}


def test_parallel_workers_multiply_booked_memory() -> None:
    """A server with 2 parallel workers books twice the model memory."""
    booked = capacity.book({"a": record("a", 10 * MI, (0, states.AVAILABLE))}, lambda server: 2)
    assert booked["s.0"].loaded == 20 * MI


def test_usage_available_is_capacity_minus_loaded() -> None:
    """available = memory x (1 + overcommit%) - loaded; reserved is reported beside it."""
    booked = capacity.book(
        {
            "a": record("a", 10 * MI, (0, states.LOAD_REQUESTED)),
            "c": record("c", 30 * MI, (0, states.AVAILABLE)),
        },
        lambda server: 0,
    )
    usage = capacity.server_usage("s", [replica(1), replica(0, overcommit=10)], booked)
    assert [r.index for r in usage.replicas] == [0, 1]
    first = usage.replicas[0]
    assert (first.reserved_bytes, first.loaded_bytes, first.available_bytes) == (10 * MI, 30 * MI, 80 * MI)
    assert usage.replicas[1].available_bytes == 100 * MI


def test_scale_up_to_largest_desired_capped_by_max() -> None:
    """Up to min(largest desired replicas of the server's models, maxReplicas)."""
    short = [capacity.Shortfall("iris", 2, 5)]
    server = ServerRecord("s", 2, "mlserver")
    up = capacity.scale_request(server, ServerLimits(), [5, 7], short, 0, "now")
    assert up is not None
    assert (up.direction, up.current_replicas, up.target_replicas) == ("up", 2, 7)
    capped = capacity.scale_request(server, ServerLimits(max_replicas=4), [5], short, 0, "now")
    assert capped is not None
    assert capped.target_replicas == 4
    assert capacity.scale_request(server, ServerLimits(max_replicas=2), [5], short, 0, "now") is None


def test_scale_down_to_expected_minus_empty_not_below_min() -> None:
    """Down to max(minReplicas (>= 1), expected - empty)."""
    server = ServerRecord("s", 4, "mlserver")
    down = capacity.scale_request(server, ServerLimits(), [], [], 2, "now")
    assert down is not None
    assert (down.direction, down.target_replicas) == ("down", 2)
    floor = capacity.scale_request(server, ServerLimits(min_replicas=3), [], [], 2, "now")
    assert floor is not None
    assert floor.target_replicas == 3
    assert capacity.scale_request(ServerRecord("s", 1, "m"), ServerLimits(), [], [], 1, "now") is None


def test_scaled_to_zero_server_gets_no_request() -> None:
    """A server scaled to 0 (or being deleted) is never asked to grow or shrink."""
    short = [capacity.Shortfall("iris", 0, 2)]
    assert capacity.scale_request(ServerRecord("s", 0, "m"), ServerLimits(), [2], short, 0, "now") is None


def test_only_replicas_that_held_models_count_as_empty() -> None:
    """A fresh replica is not empty; one whose models all left is, until it gets one again."""
    empty = capacity.EmptyReplicas()
    live = [replica(0), replica(1)]
    holding = capacity.book({"a": record("a", MI, (0, states.AVAILABLE))}, lambda server: 0)
    empty.update(live, holding)
    assert empty.count("s") == 0
    empty.update(live, {})
    assert empty.count("s") == 1
    empty.update(live, holding)
    assert empty.count("s") == 0
    empty.update(live, {})
    empty.update([replica(1)], {})
    assert empty.count("s") == 0


def test_backoff_doubles_to_the_maximum_and_resets() -> None:
    """Due after initial, then after 2x, 4x ... up to the maximum; reset starts over."""
    backoff = Backoff(1.0, 4.0)
    assert not backoff.due("m", 0.0)
    assert not backoff.due("m", 0.5)
    assert backoff.due("m", 1.0)
    assert backoff.delay("m") == 2.0
    assert not backoff.due("m", 2.5)
    assert backoff.due("m", 3.0)
    assert backoff.due("m", 7.0)
    assert backoff.delay("m") == 4.0
    backoff.reset("m")
    assert backoff.delay("m") is None
    assert not backoff.due("m", 100.0)
    assert backoff.due("m", 101.0)


def test_a_server_without_max_replicas_is_asked_for_no_more_than_the_cap() -> None:
    """A model wanting 300 replicas on a Server without maxReplicas gets a request for the cap (8);
    a Server written with 300 replicas past the api counts as 8; its own maxReplicas wins."""
    short = [capacity.Shortfall("iris", 1, 300)]
    record, limits = converters.server_from_pb(_server_pb(replicas=1), 8)
    up = capacity.scale_request(record, limits, [300], short, 0, "now")
    assert up is not None
    assert up.target_replicas == 8
    record, limits = converters.server_from_pb(_server_pb(replicas=300), 8)
    assert record.expected_replicas == 8
    assert capacity.scale_request(record, limits, [300], short, 0, "now") is None
    record, limits = converters.server_from_pb(_server_pb(replicas=1, max_replicas=20), 8)
    up = capacity.scale_request(record, limits, [300], short, 0, "now")
    assert up is not None
    assert up.target_replicas == 20


def _server_pb(replicas: int, max_replicas: int = 0) -> resources_pb2.Server:
    return convert.server_to_pb(
        Server(Meta(name="s"), ServerSpec("mlserver", replicas=replicas, max_replicas=max_replicas))
    )
