"""ServerRequirementFilter: every requirement (trimmed) is a capability of the server."""

from __future__ import annotations

from modelplane.services.scheduler.cluster import ServerView
from modelplane.services.scheduler.policy.filters.server_requirement import ServerRequirementFilter
from tests.scheduler.policy.builders import replica, request


def test_names_the_missing_capability() -> None:
    """A server lacking a requirement is rejected, naming what is missing."""
    triton = ServerView("triton", 1, (replica(capabilities=("triton", "onnx")),))
    assert (
        ServerRequirementFilter().reject(request(requirements=("sklearn",)), triton)
        == "missing capability sklearn"
    )


def test_trims_requirements_and_capabilities() -> None:
    """Whitespace around requirements and capabilities is ignored; empty requirements are none."""
    server = ServerView("s", 1, (replica(capabilities=(" sklearn ", "mlserver")),))
    assert ServerRequirementFilter().reject(request(requirements=("sklearn ", " ")), server) is None


def test_capability_must_be_on_every_usable_replica() -> None:
    """A capability offered by only some usable replicas is not the server's; unusable ones do not count."""
    f = ServerRequirementFilter()
    mixed = ServerView("s", 2, (replica(0), replica(1, capabilities=("xgboost",))))
    assert (
        f.reject(request(requirements=("sklearn",)), mixed) == "capability sklearn missing on 1 of 2 replicas"
    )
    broken = ServerView("s", 2, (replica(0), replica(1, capabilities=(), unavailable_reason="down")))
    assert f.reject(request(requirements=("sklearn",)), broken) is None


def test_lists_several_missing_capabilities() -> None:
    """Several missing capabilities are listed in a stable order; the filter describes itself."""
    f = ServerRequirementFilter()
    got = f.reject(request(requirements=("onnx", "gpu")), ServerView("s", 1, (replica(),)))
    assert got == "missing capabilities gpu, onnx"
    assert f.name == "ServerRequirementFilter"
    assert f.describe()
