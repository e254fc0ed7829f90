"""The placement function: one server per version, best fit or spread, partial, explanations."""

from __future__ import annotations

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView, ServerView
from modelplane.services.scheduler.placement import Placed, Unplaceable, default_policy, place
from modelplane.services.scheduler.policy.base import PlacementRequest

MI = 1 << 20
SK = ("mlserver", "sklearn")
TRITON = ("triton", "onnx")


def server(
    name: str,
    caps: tuple[str, ...],
    used: list[int],
    memory: int = 200 * MI,
    expected: int | None = None,
    **fields: object,
) -> ServerView:
    replicas = tuple(
        ReplicaView(name, i, caps, memory, used_bytes=u, **fields)  # type: ignore[arg-type]
        for i, u in enumerate(used)
    )
    return ServerView(name, len(used) if expected is None else expected, replicas)


def req(
    replicas: int = 1, memory: int = 100 * MI, current_server: str = "", **spec: object
) -> PlacementRequest:
    return PlacementRequest(
        "iris",
        1,
        ModelSpec(storage_uri="x", requirements=("sklearn",), memory_bytes=memory, replicas=replicas, **spec),  # type: ignore[arg-type]
        current_server,
    )


def test_places_on_matching_server_most_free_replica() -> None:
    """The model goes to the capable server, on its replica with the most free memory."""
    got = place(
        req(), [server("triton", TRITON, [0]), server("mlserver", SK, [50 * MI, 0])], default_policy()
    )
    assert got == Placed("mlserver", (1,))


def test_best_fit_across_servers() -> None:
    """Among feasible servers the tighter fit wins (best-fit is the default)."""
    got = place(req(), [server("a", SK, [0]), server("b", SK, [90 * MI])], default_policy())
    assert got == Placed("b", (0,))


def test_spread_across_servers() -> None:
    """With the spread strategy the roomiest server wins."""
    got = place(req(), [server("a", SK, [0]), server("b", SK, [90 * MI])], default_policy("spread"))
    assert got == Placed("a", (0,))


def test_equal_fit_goes_to_the_first_name() -> None:
    """Ties between servers go by name, never at random."""
    got = place(req(), [server("b", SK, [0]), server("a", SK, [0])], default_policy())
    assert got == Placed("a", (0,))


def test_all_replicas_on_one_server() -> None:
    """A version needing 2 replicas skips a server that has only one that fits."""
    got = place(req(replicas=2), [server("a", SK, [0, 150 * MI]), server("b", SK, [0, 0])], default_policy())
    assert got == Placed("b", (0, 1))


def test_equal_free_memory_prefers_lower_index() -> None:
    """Replicas with equal free memory are taken from the lowest index."""
    got = place(req(replicas=2), [server("a", SK, [0, 0, 0])], default_policy())
    assert got == Placed("a", (0, 1))


def test_reserved_memory_is_not_free() -> None:
    """Memory reserved for loads in flight counts against the replica."""
    got = place(req(), [server("a", SK, [0, 0], reserved_bytes=150 * MI)], default_policy())
    assert isinstance(got, Unplaceable)
    assert "0 of 2 replicas have enough memory (needs 100Mi)" in got.reason


def test_failure_reason_names_every_server_and_filter() -> None:
    """ScheduleFailed explains per server which filter rejected it and why."""
    got = place(
        req(replicas=2),
        [server("triton", TRITON, [0]), server("mlserver", SK, [0, 150 * MI])],
        default_policy(),
    )
    assert isinstance(got, Unplaceable)
    assert got.reason == (
        "no server can take 2 replicas: server mlserver: 1 of 2 replicas has enough memory (needs 100Mi); "
        "server triton: missing capability sklearn"
    )
    assert got.rejected_by == {
        "mlserver": "AvailableMemoryReplicaFilter",
        "triton": "ServerRequirementFilter",
    }


def test_partial_placement_with_min_replicas() -> None:
    """Without room for all replicas, minReplicas are placed and the result says how many are missing."""
    got = place(req(replicas=3, min_replicas=1), [server("a", SK, [0, 0])], default_policy())
    assert isinstance(got, Placed)
    assert (got.server, got.indexes, got.missing, got.partial) == ("a", (0, 1), 1, True)
    assert got.shortfall == "no server can take 3 replicas: server a: has 2 connected replicas, needs 3"


def test_partial_prefers_the_server_with_more_replicas() -> None:
    """A partial placement picks the server that can take the most replicas."""
    servers = [server("a", SK, [0]), server("b", SK, [0, 0])]
    got = place(req(replicas=3, min_replicas=1), servers, default_policy())
    assert isinstance(got, Placed)
    assert (got.server, got.indexes, got.missing) == ("b", (0, 1), 1)


def test_partial_fails_below_min_replicas() -> None:
    """When even minReplicas do not fit, the reason names both counts."""
    got = place(req(replicas=3, min_replicas=2), [server("a", SK, [0])], default_policy())
    assert isinstance(got, Unplaceable)
    assert (
        got.reason
        == "no server can take 3 replicas or the minimum of 2: server a: has 1 connected replica, needs 2"
    )


def test_no_partial_without_min_replicas() -> None:
    """minReplicas 0 means all desired replicas or nothing (Seldon retries only when min > 0)."""
    assert isinstance(place(req(replicas=3), [server("a", SK, [0, 0])], default_policy()), Unplaceable)
    got = place(req(replicas=3, min_replicas=1), [server("a", SK, [0, 0])], default_policy(), partial=False)
    assert isinstance(got, Unplaceable)


def test_threshold_takes_up_to_desired() -> None:
    """An explicit threshold needs that many suitable replicas and takes up to the desired count."""
    got = place(req(replicas=3), [server("a", SK, [0, 0])], default_policy(), threshold=2)
    assert got == Placed("a", (0, 1), missing=1)


def test_pinned_model_goes_to_its_server_only() -> None:
    """A pinned model lands on its server even when another fits better, and fails naming only it."""
    servers = [server("a", SK, [90 * MI]), server("b", SK, [0])]
    assert place(req(server="b"), servers, default_policy()) == Placed("b", (0,))
    got = place(req(server="a", memory=150 * MI), servers, default_policy())
    assert isinstance(got, Unplaceable)
    assert (
        got.reason
        == "no server can take 1 replica: server a: 0 of 1 replicas have enough memory (needs 150Mi)"
    )


def test_pinned_to_missing_server() -> None:
    """A model pinned to a server that does not exist says so."""
    got = place(req(server="nope"), [server("a", SK, [0])], default_policy())
    assert isinstance(got, Unplaceable)
    assert got.reason == "server nope (pinned by spec.server) does not exist"


def test_scaled_to_zero_and_deleted_servers_take_nothing() -> None:
    """Servers expecting 0 replicas or whose resource is gone are skipped, and say why."""
    gone = ServerView("gone", 1, server("gone", SK, [0]).replicas, exists=False)
    got = place(req(), [server("zero", SK, [0], expected=0), gone], default_policy())
    assert isinstance(got, Unplaceable)
    assert "server zero: server is scaled to 0 replicas" in got.reason
    assert "server gone: server resource is deleted" in got.reason


def test_draining_replicas_take_nothing() -> None:
    """A draining replica is never chosen; the model goes to a replica that is not draining."""
    a = server("a", SK, [0, 50 * MI])
    draining = ServerView("a", 2, (ReplicaView("a", 0, SK, 200 * MI, draining=True), a.replicas[1]))
    assert place(req(), [draining], default_policy()) == Placed("a", (1,))
    got = place(req(replicas=2), [draining], default_policy())
    assert isinstance(got, Unplaceable)
    assert "server a: 1 of 2 replicas draining" in got.reason


def test_rescale_keeps_replicas_that_hold_the_version() -> None:
    """A version already on a replica stays there (no reload) even if another has more room."""
    holder = ReplicaView("a", 1, SK, 200 * MI, used_bytes=190 * MI, assigned=frozenset({"iris_1"}))
    servers = [ServerView("a", 2, (ReplicaView("a", 0, SK, 200 * MI), holder)), server("b", SK, [0, 0])]
    assert place(req(current_server="a"), servers, default_policy()) == Placed("a", (1,))
    assert place(req(replicas=2, current_server="a"), servers, default_policy()) == Placed("a", (1, 0))


def test_parallel_workers_multiply_memory() -> None:
    """Required memory is memory x the server's parallel workers."""
    got = place(req(memory=60 * MI), [server("a", SK, [0], parallel_workers=4)], default_policy())
    assert isinstance(got, Unplaceable)
    assert "needs 240Mi" in got.reason


def test_explainer_needs_alibi_explain() -> None:
    """An explainer model goes only where alibi-explain is offered."""
    servers = [server("a", SK, [0]), server("b", (*SK, "alibi-explain"), [100 * MI])]
    assert place(req(explainer_for="iris"), servers, default_policy("spread")) == Placed("b", (0,))


def test_no_servers() -> None:
    """With no servers at all the reason says so."""
    got = place(req(), [], default_policy())
    assert isinstance(got, Unplaceable)
    assert got.reason == "no servers are available"


def test_deterministic() -> None:
    """Equal inputs in any order give the same decision."""
    servers = [server("a", SK, [0, 0]), server("b", SK, [0, 0])]
    assert place(req(), servers, default_policy()) == place(req(), list(reversed(servers)), default_policy())


def test_policy_describes_itself() -> None:
    """Every policy object and the strategy have a name and a description."""
    lines = default_policy().describe()
    assert any(line.startswith("replica filter AvailableMemoryReplicaFilter: ") for line in lines)
    assert lines[-1].startswith("server strategy best-fit: ")
    assert all(": " in line for line in lines)
