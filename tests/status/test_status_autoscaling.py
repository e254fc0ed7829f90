"""The autoscaler's last decision in a model's status: copied from KV_AUTOSCALER, written only on change."""

from __future__ import annotations

from nats.js import JetStreamContext

from modelplane.libs import states, subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2, state_pb2
from modelplane.services.status.app import StatusApp
from modelplane.services.status.settings import StatusSettings

from .test_status_app import eventually, placement, status_of


def iris(autoscaled: bool, generation: int = 1) -> resources_pb2.Model:
    spec = resources_pb2.ModelSpec(storage_uri="file:///m", replicas=2, min_replicas=1, max_replicas=4)
    if autoscaled:
        spec.autoscaling.target_requests = 2
    return resources_pb2.Model(meta=resources_pb2.ObjectMeta(name="iris", generation=generation), spec=spec)


def record(desired: int, at: str) -> state_pb2.ModelScaling:
    return state_pb2.ModelScaling(
        model="iris",
        average=2.0 * desired,
        current_replicas=2,
        desired_replicas=desired,
        reason=f"avg in-flight {2 * desired} / target 2 -> {desired}",
        at=at,
    )


async def test_decision_follows_the_autoscaler_record(
    nats_server: EmbeddedNats, js: JetStreamContext
) -> None:
    """The record shows in the status; an identical record writes nothing; a deleted one is removed."""
    app = StatusApp(StatusSettings.model_validate({"nats_url": nats_server.url}))
    models = await TypedBucket.open(js, subjects.KV_MODELS, resources_pb2.Model)
    placements = await TypedBucket.open(js, subjects.KV_PLACEMENTS, state_pb2.ModelPlacement)
    scaling = await TypedBucket.open(js, subjects.KV_AUTOSCALER, state_pb2.ModelScaling)
    statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    key = subjects.status_key("Model", "iris")
    await models.put("iris", iris(autoscaled=True))
    await placements.put("iris", placement(states.AVAILABLE))
    try:
        await app.start()
        await scaling.put("iris", record(4, "2026-11-24T10:01:02Z"))

        async def shows(at: str) -> bool:
            s = await status_of(js, "Model", "iris")
            return s is not None and s.autoscaling.at == at

        await eventually(lambda: shows("2026-11-24T10:01:02Z"))
        first = await statuses.get(key)
        assert first.value.autoscaling == record(4, "2026-11-24T10:01:02Z")
        assert first.value.state == states.MODEL_AVAILABLE

        # The same record again, then a new one: one status write between them, for the new one
        # (the watch delivers in order and one worker writes the key, so the first was skipped).
        await scaling.put("iris", record(4, "2026-11-24T10:01:02Z"))
        await scaling.put("iris", record(3, "2026-11-24T10:01:12Z"))
        await eventually(lambda: shows("2026-11-24T10:01:12Z"))
        second = await statuses.get(key)
        assert second.revision == first.revision + 1
        assert second.value.last_change == first.value.last_change

        await scaling.delete("iris")

        async def cleared() -> bool:
            s = await status_of(js, "Model", "iris")
            return s is not None and not s.HasField("autoscaling")

        await eventually(cleared)
    finally:
        await app.close()


async def test_decision_hidden_once_spec_drops_autoscaling(
    nats_server: EmbeddedNats, js: JetStreamContext
) -> None:
    """A record stays in KV when a model's autoscaling is removed, but its status no longer shows it."""
    app = StatusApp(StatusSettings.model_validate({"nats_url": nats_server.url}))
    models = await TypedBucket.open(js, subjects.KV_MODELS, resources_pb2.Model)
    placements = await TypedBucket.open(js, subjects.KV_PLACEMENTS, state_pb2.ModelPlacement)
    scaling = await TypedBucket.open(js, subjects.KV_AUTOSCALER, state_pb2.ModelScaling)
    await models.put("iris", iris(autoscaled=True))
    await placements.put("iris", placement(states.AVAILABLE))
    await scaling.put("iris", record(4, "t1"))
    try:
        await app.start()

        async def shown(expected: bool) -> bool:
            s = await status_of(js, "Model", "iris")
            return s is not None and s.HasField("autoscaling") == expected

        await eventually(lambda: shown(True))
        await models.put("iris", iris(autoscaled=False, generation=2))
        await eventually(lambda: shown(False))
    finally:
        await app.close()
