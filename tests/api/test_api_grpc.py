"""The ControlService gRPC adapter over a real grpc.aio server and nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TypeAlias

import grpc
import pytest
from google.protobuf import struct_pb2
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.auth.grpc_metadata import bearer_interceptors
from modelplane.libs.store import TypedBucket
from modelplane.proto import control_pb2, control_pb2_grpc, resources_pb2, state_pb2
from modelplane.services.api.app import App


@pytest.fixture
async def stub(api_app: App, admin_token: str) -> AsyncIterator[control_pb2_grpc.ControlServiceStub]:
    async with grpc.aio.insecure_channel(
        api_app.grpc_address, interceptors=bearer_interceptors(admin_token)
    ) as channel:
        yield control_pb2_grpc.ControlServiceStub(channel)


# A JSON-like value, as Struct.update accepts it.
JsonValue: TypeAlias = str | float | bool | Mapping[str, "JsonValue"] | Sequence["JsonValue"] | None


def manifest(**spec: JsonValue) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(
        {
            "apiVersion": "mlops.seldon.io/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris"},
            "spec": {"storageUri": "gs://seldon-models/scv2/samples/mlserver_1.3.5/iris-sklearn", **spec},
        }
    )
    return struct


async def test_apply_manifest_struct_keeps_integers(stub: control_pb2_grpc.ControlServiceStub) -> None:
    """A manifest sent as a Struct is parsed with its integers intact and versioned."""
    reply = await stub.Apply(
        control_pb2.ApplyRequest(manifest=manifest(replicas=2, requirements=["sklearn"]))
    )
    assert reply.outcome == "created"
    assert reply.resource.model.spec.replicas == 2
    assert reply.resource.model.meta.generation == 1
    assert reply.resource.model.meta.imported_from == "mlops.seldon.io/v1alpha1/Model"
    again = await stub.Apply(
        control_pb2.ApplyRequest(manifest=manifest(replicas=2, requirements=["sklearn"]))
    )
    assert again.outcome == "unchanged"


async def test_apply_typed_resource(stub: control_pb2_grpc.ControlServiceStub) -> None:
    """A typed Resource is applied; a second apply with another spec configures it."""
    model = resources_pb2.Model(
        meta=resources_pb2.ObjectMeta(name="iris"), spec=resources_pb2.ModelSpec(storage_uri="/m", replicas=1)
    )
    reply = await stub.Apply(control_pb2.ApplyRequest(resource=control_pb2.Resource(model=model)))
    assert reply.outcome == "created"
    model.spec.replicas = 3
    reply = await stub.Apply(control_pb2.ApplyRequest(resource=control_pb2.Resource(model=model)))
    assert (reply.outcome, reply.resource.model.meta.generation) == ("configured", 2)
    got = await stub.Get(control_pb2.ResourceRef(kind="Model", name="iris"))
    assert got.model.spec.replicas == 3
    listed = await stub.List(control_pb2.ListRequest(kind="models"))
    assert [r.model.meta.name for r in listed.resources] == ["iris"]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"apiVersion": "modelplane.io/v1alpha1", "kind": "Pod", "metadata": {"name": "x"}}, "kind:"),
        ({"apiVersion": "v9", "kind": "Model", "metadata": {"name": "x"}}, "apiVersion:"),
        (
            {"apiVersion": "modelplane.io/v1alpha1", "kind": "Model", "metadata": {"name": "x"}, "spec": {}},
            "spec.storageUri",
        ),
        (
            {
                "apiVersion": "modelplane.io/v1alpha1",
                "kind": "Model",
                "metadata": {"name": "Iris_1"},
                "spec": {"storageUri": "/m"},
            },
            "metadata.name",
        ),
        (
            {
                "apiVersion": "modelplane.io/v1alpha1",
                "kind": "Model",
                "metadata": {"name": "x"},
                "spec": {"storageUri": "/m", "replicas": -1},
            },
            "spec.replicas",
        ),
    ],
)
async def test_invalid_manifest_is_invalid_argument_naming_the_field(
    stub: control_pb2_grpc.ControlServiceStub, doc: Mapping[str, JsonValue], expected: str
) -> None:
    """Bad manifests fail with INVALID_ARGUMENT and a message that starts with the field."""
    struct = struct_pb2.Struct()
    struct.update(doc)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Apply(control_pb2.ApplyRequest(manifest=struct))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(expected)


async def test_missing_resources_are_not_found(stub: control_pb2_grpc.ControlServiceStub) -> None:
    """Get, Delete and GetStatus of an absent resource are NOT_FOUND naming it; a bad kind is INVALID_ARGUMENT."""
    ref = control_pb2.ResourceRef(kind="Model", name="nope")
    for call in (stub.Get, stub.Delete, stub.GetStatus):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(ref)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert "Model 'nope' not found" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Get(control_pb2.ResourceRef(kind="Pod", name="x"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_status_replicas_and_delete(
    stub: control_pb2_grpc.ControlServiceStub, js: JetStreamContext
) -> None:
    """Status falls back while unwritten, replicas come from KV, Delete reports deleted."""
    await stub.Apply(control_pb2.ApplyRequest(manifest=manifest()))
    status = await stub.GetStatus(control_pb2.ResourceRef(kind="Model", name="iris"))
    assert (status.status.state, status.status.reason) == ("ModelStateUnknown", "waiting for status")
    statuses = await stub.ListStatus(control_pb2.ListRequest(kind="Model"))
    assert [s.name for s in statuses.statuses] == ["iris"]
    replicas = await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
    await replicas.put("mlserver.0", state_pb2.ReplicaInfo(server="mlserver", index=0, http_endpoint="h:1"))
    got = await stub.GetServerReplicas(control_pb2.ResourceRef(kind="Server", name="mlserver"))
    assert [r.http_endpoint for r in got.replicas] == ["h:1"]
    deleted = await stub.Delete(control_pb2.ResourceRef(kind="Model", name="iris"))
    assert deleted.outcome == "deleted"


async def test_watch_status_streams_changes(
    stub: control_pb2_grpc.ControlServiceStub, js: JetStreamContext
) -> None:
    """WatchStatus streams the current status and then each change of it."""
    bucket = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    key = subjects.status_key("Model", "iris")
    await bucket.put(key, state_pb2.ResourceStatus(kind="Model", name="iris", state="ModelProgressing"))
    call = stub.WatchStatus(control_pb2.WatchRequest(kind="Model", name="iris"))
    first = await call.read()
    assert (first.type, first.status.state) == ("PUT", "ModelProgressing")
    await bucket.put(key, state_pb2.ResourceStatus(kind="Model", name="iris", state="ModelAvailable"))
    second = await call.read()
    assert second.status.state == "ModelAvailable"
    call.cancel()


async def test_close_ends_open_watches_and_is_idempotent(
    api_app: App, admin_token: str, js: JetStreamContext
) -> None:
    """Closing the app ends a client's open WatchStatus stream; a second close() is a no-op."""
    bucket = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    await bucket.put(subjects.status_key("Model", "iris"), state_pb2.ResourceStatus(name="iris", state="X"))
    async with grpc.aio.insecure_channel(
        api_app.grpc_address, interceptors=bearer_interceptors(admin_token)
    ) as channel:
        call = control_pb2_grpc.ControlServiceStub(channel).WatchStatus(
            control_pb2.WatchRequest(kind="Model")
        )
        assert (await call.read()).status.state == "X"
        await api_app.close()
        try:
            ended = await call.read() is grpc.aio.EOF
        except grpc.aio.AioRpcError:
            ended = True
        assert ended
    await api_app.close()


async def test_scale_sets_only_the_replicas(stub: control_pb2_grpc.ControlServiceStub) -> None:
    """Scale changes replicas (a new generation, the rest of the spec kept); out of bounds or a
    kind without replicas is INVALID_ARGUMENT naming the field; an unknown model NOT_FOUND."""
    await stub.Apply(
        control_pb2.ApplyRequest(manifest=manifest(replicas=1, maxReplicas=3, requirements=["sklearn"]))
    )
    reply = await stub.Scale(control_pb2.ScaleRequest(kind="Model", name="iris", replicas=3, reason="busy"))
    assert (reply.outcome, reply.resource.model.spec.replicas) == ("configured", 3)
    assert reply.resource.model.meta.generation == 2
    assert list(reply.resource.model.spec.requirements) == ["sklearn"]
    again = await stub.Scale(control_pb2.ScaleRequest(kind="Model", name="iris", replicas=3))
    assert again.outcome == "unchanged"
    for request, field in (
        (control_pb2.ScaleRequest(kind="Model", name="iris", replicas=4), "spec.replicas"),
        (control_pb2.ScaleRequest(kind="ServerConfig", name="mlserver", replicas=1), "kind"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Scale(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.Scale(control_pb2.ScaleRequest(kind="Model", name="nope", replicas=1))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
