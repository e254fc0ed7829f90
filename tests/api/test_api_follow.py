"""FollowModel over a real grpc.aio server and nats-server: status changes and relayed progress."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.auth.grpc_metadata import bearer_interceptors
from modelplane.libs.store import TypedBucket
from modelplane.proto import agent_pb2, control_pb2, control_pb2_grpc, resources_pb2, state_pb2
from modelplane.services.api.app import App


@pytest.fixture
async def stub(api_app: App, admin_token: str) -> AsyncIterator[control_pb2_grpc.ControlServiceStub]:
    async with grpc.aio.insecure_channel(
        api_app.grpc_address, interceptors=bearer_interceptors(admin_token)
    ) as channel:
        yield control_pb2_grpc.ControlServiceStub(channel)


async def apply_iris(stub: control_pb2_grpc.ControlServiceStub) -> None:
    model = resources_pb2.Model(
        meta=resources_pb2.ObjectMeta(name="iris"),
        spec=resources_pb2.ModelSpec(storage_uri="s3://models/iris", replicas=1),
    )
    await stub.Apply(control_pb2.ApplyRequest(resource=control_pb2.Resource(model=model)))


async def test_follow_streams_status_then_progress_and_changes(
    stub: control_pb2_grpc.ControlServiceStub, js: JetStreamContext, nc: NATS
) -> None:
    """FollowModel sends the current status, then storage progress from NATS and status changes,
    and says when the model's status is deleted."""
    await apply_iris(stub)
    call = stub.FollowModel(control_pb2.FollowModelRequest(name="iris"))
    first = await call.read()
    assert (first.WhichOneof("event"), first.status.state) == ("status", "ModelStateUnknown")

    progress = agent_pb2.FetchProgress(
        model="iris",
        version=1,
        uri="s3://models/iris",
        bytes_done=45 << 20,
        bytes_total=200 << 20,
        bytes_per_second=12.5 * (1 << 20),
        phase="downloading",
    )
    await nc.publish(subjects.storage_progress("iris"), progress.SerializeToString())
    await nc.publish(subjects.storage_progress("other"), progress.SerializeToString())
    relayed = await call.read()
    assert relayed.WhichOneof("event") == "download"
    assert (relayed.download.version, relayed.download.phase, relayed.download.bytes_done) == (
        1,
        "downloading",
        45 << 20,
    )
    assert relayed.download.bytes_total == 200 << 20

    statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    key = subjects.status_key("Model", "iris")
    await statuses.put(key, state_pb2.ResourceStatus(kind="Model", name="iris", state="ModelAvailable"))
    changed = await call.read()
    assert (changed.WhichOneof("event"), changed.status.state) == ("status", "ModelAvailable")
    await statuses.delete(key)
    gone = await call.read()
    assert gone.WhichOneof("event") == "deleted"
    call.cancel()


async def test_follow_unknown_model_is_not_found(stub: control_pb2_grpc.ControlServiceStub) -> None:
    """Following a model that does not exist fails with NOT_FOUND naming it."""
    call = stub.FollowModel(control_pb2.FollowModelRequest(name="nope"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call.read()
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in (info.value.details() or "")


async def test_follow_without_name_is_invalid(stub: control_pb2_grpc.ControlServiceStub) -> None:
    """FollowModel without a name fails with INVALID_ARGUMENT naming the field."""
    call = stub.FollowModel(control_pb2.FollowModelRequest())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call.read()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in (info.value.details() or "")


async def test_close_ends_open_follows(api_app: App, admin_token: str, js: JetStreamContext) -> None:
    """Closing the app ends an open FollowModel stream and its status pump (no leaked task)."""
    async with grpc.aio.insecure_channel(
        api_app.grpc_address, interceptors=bearer_interceptors(admin_token)
    ) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        await apply_iris(stub)
        call = stub.FollowModel(control_pb2.FollowModelRequest(name="iris"))
        assert (await call.read()).WhichOneof("event") == "status"
        assert api_app.handler.following == 1
        await api_app.close()
        try:
            ended = await call.read() is grpc.aio.EOF
        except grpc.aio.AioRpcError:
            ended = True
        assert ended
