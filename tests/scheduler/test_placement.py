"""The placement function: one server per version, best fit, explanations per server."""

from __future__ import annotations

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView, ServerView
from modelplane.services.scheduler.placement import Placed, Unplaceable, default_policy, place
from modelplane.services.scheduler.policy.base import PlacementRequest

MI = 1 << 20
SK = ("mlserver", "sklearn")
TRITON = ("triton", "onnx")


def server(name: str, caps: tuple[str, ...], used: list[int], memory: int = 200 * MI) -> ServerView:
    replicas = tuple(ReplicaView(name, i, caps, memory, used_bytes=u) for i, u in enumerate(used))
    return ServerView(name, len(used), replicas)


def req(replicas: int = 1, memory: int = 100 * MI, **spec: object) -> PlacementRequest:
    return PlacementRequest(
        "iris",
        1,
        ModelSpec(storage_uri="x", requirements=("sklearn",), memory_bytes=memory, replicas=replicas, **spec),  # type: ignore[arg-type]
    )


def test_places_on_matching_server_most_free_replica() -> None:
    """The model goes to the capable server, on its replica with the most free memory."""
    got = place(
        req(), [server("triton", TRITON, [0]), server("mlserver", SK, [50 * MI, 0])], default_policy()
    )
    assert got == Placed("mlserver", (1,))


def test_best_fit_across_servers() -> None:
    """Among feasible servers the tighter fit wins."""
    got = place(req(), [server("a", SK, [0]), server("b", SK, [90 * MI])], default_policy())
    assert got == Placed("b", (0,))


def test_all_replicas_on_one_server() -> None:
    """A version needing 2 replicas skips a server that has only one that fits."""
    got = place(req(replicas=2), [server("a", SK, [0, 150 * MI]), server("b", SK, [0, 0])], default_policy())
    assert got == Placed("b", (0, 1))


def test_failure_reason_names_every_server() -> None:
    """ScheduleFailed explains per server: missing capability, or how many replicas had memory."""
    got = place(
        req(replicas=2),
        [server("triton", TRITON, [0]), server("mlserver", SK, [0, 150 * MI])],
        default_policy(),
    )
    assert isinstance(got, Unplaceable)
    assert "server triton: missing capability sklearn" in got.reason
    assert "server mlserver: 1 of 2 replicas has enough memory (needs 100Mi)" in got.reason


def test_pinned_to_missing_server() -> None:
    """A model pinned to a server that does not exist says so."""
    got = place(req(server="nope"), [server("a", SK, [0])], default_policy())
    assert isinstance(got, Unplaceable)
    assert "nope" in got.reason


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
    """Every policy object has a name and a description."""
    lines = default_policy().describe()
    assert any("AvailableMemoryFilter" in line for line in lines)
    assert all(": " in line for line in lines)
