"""ControlHandler against a real nats-server: versioning, events, deletes, status fallbacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.libs.resources.types import Model
from modelplane.libs.store import TypedBucket
from modelplane.proto import events_pb2, state_pb2
from modelplane.services.api.handler import ControlHandler
from modelplane.services.api.kinds import parse_kind
from tests.helpers.api_handler import apply_native
from tests.helpers.auth import ADMIN


def iris(uri: str = "file:///models/iris", replicas: int = 1, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "iris", **meta},
        "spec": {"storageUri": uri, "requirements": ["sklearn"], "replicas": replicas},
    }


@pytest.fixture
async def handler(js: JetStreamContext, nc: NATS) -> AsyncIterator[ControlHandler]:
    handler = await ControlHandler.open(js, nc)
    yield handler
    await handler.close()


async def test_apply_creates_configures_and_leaves_unchanged(handler: ControlHandler) -> None:
    """A new resource gets generation 1, a changed spec bumps it, an identical apply keeps it."""
    created, outcome = await apply_native(handler, iris())
    assert outcome == "created"
    assert created.meta.generation == 1
    assert created.meta.created_at
    same, outcome = await apply_native(handler, iris())
    assert outcome == "unchanged"
    assert same.meta.generation == 1
    changed, outcome = await apply_native(handler, iris(replicas=2))
    assert outcome == "configured"
    assert changed.meta.generation == 2
    assert changed.meta.created_at == created.meta.created_at
    labelled, outcome = await apply_native(handler, iris(replicas=2, labels={"team": "a"}))
    assert (outcome, labelled.meta.generation) == ("configured", 3)
    stored = await handler.get(ADMIN, "Model", "iris")
    assert stored == labelled


async def test_apply_publishes_thin_events(handler: ControlHandler, nc: NATS) -> None:
    """Each change publishes an Event naming the resource; an unchanged apply publishes nothing."""
    sub = await nc.subscribe(subjects.ALL_EVENTS)
    await apply_native(handler, iris())
    await apply_native(handler, iris())
    await handler.delete(ADMIN, "Model", "iris")
    events = []
    for _ in range(2):
        msg = await sub.next_msg(timeout=5)
        event = events_pb2.Event()
        event.ParseFromString(msg.data)
        events.append((msg.subject, event.type, event.source, event.kind, event.name, event.schema_version))
    assert events == [
        ("modelplane.events.Model.iris", "applied", "api", "Model", "iris", 1),
        ("modelplane.events.Model.iris", "deleted", "api", "Model", "iris", 1),
    ]
    await sub.unsubscribe()


async def test_concurrent_applies_of_one_resource_all_land(handler: ControlHandler) -> None:
    """Concurrent configures of one resource retry on revision conflicts; none is lost."""
    await apply_native(handler, iris())
    results = await asyncio.gather(*(apply_native(handler, iris(replicas=n)) for n in range(2, 6)))
    generations = sorted(r.meta.generation for r, _ in results)
    assert generations == [2, 3, 4, 5]
    assert (await handler.get(ADMIN, "Model", "iris")).meta.generation == 5


async def test_invalid_manifest_is_refused_and_stored_resource_kept(handler: ControlHandler) -> None:
    """A bad manifest raises InvalidError naming the field and leaves the stored resource as it was."""
    await apply_native(handler, iris())
    bad = iris()
    bad["spec"]["replicas"] = -1
    with pytest.raises(InvalidError) as err:
        await apply_native(handler, bad)
    assert err.value.field == "spec.replicas"
    stored = await handler.get(ADMIN, "Model", "iris")
    assert isinstance(stored, Model)
    assert stored.spec.replicas == 1


async def test_typed_resources_are_validated_like_manifests(handler: ControlHandler) -> None:
    """apply() of a typed resource checks the name rule that manifests check."""
    model, _ = await apply_native(handler, iris())
    bad = replace(model, meta=replace(model.meta, name="Iris_1"))
    with pytest.raises(InvalidError) as err:
        await handler.apply(ADMIN, bad)
    assert err.value.field == "metadata.name"


async def test_list_and_delete(handler: ControlHandler) -> None:
    """list() returns resources by name; delete() removes one; a second delete is NotFound."""
    await apply_native(handler, iris())
    other = iris()
    other["metadata"]["name"] = "aaa"
    await apply_native(handler, other)
    assert [r.meta.name for r in await handler.list(ADMIN, "Model")] == ["aaa", "iris"]
    assert await handler.delete(ADMIN, "Model", "iris") == "deleted"
    assert [r.meta.name for r in await handler.list(ADMIN, "Model")] == ["aaa"]
    with pytest.raises(NotFoundError, match="Model 'iris' not found"):
        await handler.delete(ADMIN, "Model", "iris")
    with pytest.raises(NotFoundError, match="Model 'iris' not found"):
        await handler.get(ADMIN, "Model", "iris")


async def test_status_fallback_and_written_status(handler: ControlHandler, js: JetStreamContext) -> None:
    """Without a written status a stored resource reads as waiting; a written status wins."""
    with pytest.raises(NotFoundError):
        await handler.get_status(ADMIN, "Model", "iris")
    await apply_native(handler, iris(replicas=2))
    waiting = await handler.get_status(ADMIN, "Model", "iris")
    assert (waiting.state, waiting.reason, waiting.total_replicas) == (
        "ModelStateUnknown",
        "waiting for status",
        2,
    )
    bucket = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    written = state_pb2.ResourceStatus(
        kind="Model", name="iris", state="ModelAvailable", available_replicas=2
    )
    await bucket.put(subjects.status_key("Model", "iris"), written)
    assert (await handler.get_status(ADMIN, "Model", "iris")).state == "ModelAvailable"
    assert [s.state for s in await handler.list_status(ADMIN, "Model")] == ["ModelAvailable"]


async def test_server_status_fallback_and_replicas(handler: ControlHandler, js: JetStreamContext) -> None:
    """A server without status is ServerNotReady; its replicas are the KV_REPLICAS keys '<name>.*'."""
    await handler.apply_manifest(
        ADMIN,
        {
            "apiVersion": "mlops.seldon.io/v1alpha1",
            "kind": "Server",
            "metadata": {"name": "mlserver"},
            "spec": {"serverConfig": "mlserver"},
        },
    )
    assert (await handler.get_status(ADMIN, "Server", "mlserver")).state == "ServerNotReady"
    bucket = await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
    for key, server, index in (
        ("mlserver.1", "mlserver", 1),
        ("mlserver.0", "mlserver", 0),
        ("other.0", "other", 0),
    ):
        await bucket.put(key, state_pb2.ReplicaInfo(server=server, index=index))
    assert [(r.server, r.index) for r in await handler.server_replicas(ADMIN, "mlserver")] == [
        ("mlserver", 0),
        ("mlserver", 1),
    ]


async def test_watch_status_replays_then_follows(handler: ControlHandler, js: JetStreamContext) -> None:
    """watch_status yields the current status, then puts and deletes of that key only."""
    bucket = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    key = subjects.status_key("Model", "iris")
    await bucket.put(key, state_pb2.ResourceStatus(kind="Model", name="iris", state="ModelProgressing"))
    stream = handler.watch_status(ADMIN, "Model", "iris")
    kind, status = await anext(stream)
    assert (kind, status.state) == ("PUT", "ModelProgressing")
    await bucket.put(subjects.status_key("Model", "other"), state_pb2.ResourceStatus(name="other"))
    await bucket.put(key, state_pb2.ResourceStatus(kind="Model", name="iris", state="ModelAvailable"))
    kind, status = await anext(stream)
    assert (kind, status.state) == ("PUT", "ModelAvailable")
    await bucket.delete(key)
    kind, status = await anext(stream)
    assert (kind, status.name) == ("DELETE", "iris")
    await stream.aclose()


def test_parse_kind_accepts_plural_and_lower_case() -> None:
    """Kinds are accepted as Model, model, models; unknown kinds name the field."""
    assert parse_kind("models") == "Model"
    assert parse_kind("serverconfigs") == "ServerConfig"
    assert parse_kind("Server") == "Server"
    with pytest.raises(InvalidError, match="kind: unknown kind 'pods'"):
        parse_kind("pods")
