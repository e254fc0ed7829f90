"""Each placement filter: what it accepts, what it rejects and how it explains a rejection."""

from __future__ import annotations

from modelplane.libs.resources.types import ModelSpec
from modelplane.services.scheduler.cluster import ReplicaView, ServerView
from modelplane.services.scheduler.policy.base import PlacementRequest
from modelplane.services.scheduler.policy.filters.deleted_server import DeletedServerFilter
from modelplane.services.scheduler.policy.filters.draining import ReplicaDrainingFilter
from modelplane.services.scheduler.policy.filters.explainer import ExplainerFilter
from modelplane.services.scheduler.policy.filters.memory import AvailableMemoryFilter
from modelplane.services.scheduler.policy.filters.replica_usable import ReplicaUsableFilter
from modelplane.services.scheduler.policy.filters.requirements import RequirementsFilter
from modelplane.services.scheduler.policy.filters.server_replicas import ServerReplicaFilter
from modelplane.services.scheduler.policy.filters.sharing import SharingServerFilter
from modelplane.services.scheduler.policy.filters.version_server import VersionServerFilter

MI = 1 << 20


def request(**spec: object) -> PlacementRequest:
    return PlacementRequest(model="iris", version=1, spec=ModelSpec(storage_uri="file:///m", **spec))  # type: ignore[arg-type]


def replica(index: int = 0, **fields: object) -> ReplicaView:
    values: dict[str, object] = {
        "server": "mlserver",
        "index": index,
        "capabilities": ("sklearn",),
        "memory_bytes": 100 * MI,
    }
    values.update(fields)
    return ReplicaView(**values)  # type: ignore[arg-type]


def test_server_replica_filter_needs_a_usable_replica() -> None:
    """A server without connected usable replicas is rejected with a waiting reason."""
    f = ServerReplicaFilter()
    assert f.reject(request(), ServerView("s", 1)) == "waiting for server replicas to connect"
    bad = ServerView("s", 1, (replica(unavailable_reason="tritonserver not found"),))
    assert "tritonserver not found" in (f.reject(request(), bad) or "")
    assert f.reject(request(), ServerView("s", 1, (replica(),))) is None
    assert f.describe()


def test_sharing_filter_honours_pin() -> None:
    """A pinned model only goes to its server."""
    f = SharingServerFilter()
    assert f.reject(request(server="a"), ServerView("b", 1)) == "model is pinned to server a"
    assert f.reject(request(server="a"), ServerView("a", 1)) is None
    assert f.reject(request(), ServerView("b", 1)) is None


def test_version_server_filter_keeps_a_version_on_one_server() -> None:
    """A version with live replicas cannot spread to another server."""
    f = VersionServerFilter()
    req = PlacementRequest("iris", 2, ModelSpec(storage_uri="x"), current_server="a")
    assert "already runs on server a" in (f.reject(req, ServerView("b", 1)) or "")
    assert f.reject(req, ServerView("a", 1)) is None


def test_deleted_server_filter() -> None:
    """Servers scaled to zero or deleted take no models."""
    f = DeletedServerFilter()
    assert f.reject(request(), ServerView("s", 0)) == "server is scaled to 0 replicas"
    assert f.reject(request(), ServerView("s", 1, exists=False)) == "server resource is deleted"
    assert f.reject(request(), ServerView("s", 1)) is None


def test_requirements_filter_names_missing_capability() -> None:
    """Requirements must be among the capabilities (trimmed); the explanation names what is missing."""
    f = RequirementsFilter()
    triton = replica(capabilities=("triton", "onnx"))
    assert not f.accepts(request(requirements=("sklearn",)), triton)
    assert f.accepts(request(requirements=(" sklearn ",)), replica())
    assert f.explain(request(requirements=("sklearn",)), [triton], 0, 1) == "missing capability sklearn"


def test_explainer_filter_needs_alibi_explain() -> None:
    """An explainer model needs the alibi-explain capability."""
    f = ExplainerFilter()
    assert f.accepts(request(), replica())
    assert not f.accepts(request(explainer_for="iris"), replica())
    assert f.accepts(request(explainer_for="iris"), replica(capabilities=("alibi-explain",)))


def test_draining_filter() -> None:
    """Draining replicas take no new models."""
    f = ReplicaDrainingFilter()
    assert not f.accepts(request(), replica(draining=True))
    assert f.accepts(request(), replica())
    assert f.explain(request(), [replica(draining=True)], 1, 2) == "1 of 2 replicas draining"


def test_usable_filter() -> None:
    """A replica with an unavailable_reason takes no models."""
    f = ReplicaUsableFilter()
    assert not f.accepts(request(), replica(unavailable_reason="no binary"))
    assert f.accepts(request(), replica())


def test_memory_filter_counts_overcommit_workers_and_holders() -> None:
    """Free memory (with overcommit) must cover memory x parallel workers, unless already held."""
    f = AvailableMemoryFilter()
    assert f.accepts(request(memory_bytes=100 * MI), replica())
    assert not f.accepts(request(memory_bytes=60 * MI), replica(used_bytes=50 * MI))
    assert f.accepts(request(memory_bytes=60 * MI), replica(used_bytes=50 * MI, overcommit_percent=10))
    assert not f.accepts(request(memory_bytes=60 * MI, parallel_workers=2), replica())
    assert f.accepts(
        request(memory_bytes=60 * MI), replica(used_bytes=100 * MI, assigned=frozenset({"iris_1"}))
    )
    text = f.explain(request(memory_bytes=100 * MI), [replica(1, used_bytes=MI)], 1, 2)
    assert text == "1 of 2 replicas has enough memory (needs 100Mi)"
