"""Composition root of the status service: KV watches in, KV_STATUS out."""

from __future__ import annotations

from nats.aio.client import Client as NATS

from modelplane.libs import subjects
from modelplane.libs.store import TypedBucket, connect, disconnect, ensure_buckets
from modelplane.libs.tasks import KeyedWorkers, TaskSupervisor
from modelplane.libs.watching import BucketWatch, watch_buckets
from modelplane.proto import resources_pb2, state_pb2
from modelplane.services.status import converters
from modelplane.services.status.handler import StatusDeriver
from modelplane.services.status.nats_adapter import ProgressSubscriber
from modelplane.services.status.settings import StatusSettings
from modelplane.services.status.types import Status

# How long start() waits for the KV replays before giving up.
_CATCH_UP_TIMEOUT = 30.0


class KvStatusOutputs:
    def __init__(self, bucket: TypedBucket[state_pb2.ResourceStatus]) -> None:
        self._bucket = bucket

    async def put(self, key: str, status: Status) -> None:
        await self._bucket.put(key, converters.status_to_pb(status))

    async def delete(self, key: str) -> None:
        await self._bucket.delete(key)


class StatusApp:
    name = "status"

    def __init__(self, settings: StatusSettings) -> None:
        self.settings = settings
        self.shutdown_timeout = settings.shutdown_timeout
        self.deriver: StatusDeriver | None = None
        self._nc: NATS | None = None
        self._progress: ProgressSubscriber | None = None
        self._supervisor = TaskSupervisor("status")
        self._closed = False

    async def start(self) -> None:
        nc = await connect(self.settings.nats_url, name="modelplane-status", creds=self.settings.nats_creds)
        self._nc = nc
        js = nc.jetstream()
        await ensure_buckets(js)
        status_bucket = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
        deriver = StatusDeriver(
            KvStatusOutputs(status_bucket),
            KeyedWorkers(self._supervisor, "status"),
            progress_interval=self.settings.progress_interval,
        )
        self.deriver = deriver
        deriver.restore({v.key: converters.status_from_pb(v.value) for v in await status_bucket.items()})

        def on_model(key: str, msg: resources_pb2.Model | None) -> None:
            deriver.model_changed(key, converters.model_from_pb(msg) if msg is not None else None)

        def on_placement(key: str, msg: state_pb2.ModelPlacement | None) -> None:
            deriver.placement_changed(key, converters.placement_from_pb(msg) if msg is not None else None)

        def on_autoscaling(key: str, msg: state_pb2.ModelScaling | None) -> None:
            deriver.autoscaling_changed(key, converters.autoscaling_from_pb(msg) if msg is not None else None)

        def on_server(key: str, msg: resources_pb2.Server | None) -> None:
            deriver.server_changed(key, converters.server_from_pb(msg) if msg is not None else None)

        def on_replica(key: str, msg: state_pb2.ReplicaInfo | None) -> None:
            deriver.replica_changed(key, converters.replica_from_pb(msg) if msg is not None else None)

        def on_usage(key: str, msg: state_pb2.ServerState | None) -> None:
            deriver.server_usage_changed(key, converters.usage_from_pb(msg) if msg is not None else None)

        def on_scale_request(key: str, msg: state_pb2.ServerScaleRequest | None) -> None:
            deriver.scale_request_changed(
                key, converters.scale_request_from_pb(msg) if msg is not None else None
            )

        await watch_buckets(
            js,
            self._supervisor,
            (
                BucketWatch(subjects.KV_MODELS, resources_pb2.Model, on_model),
                BucketWatch(subjects.KV_PLACEMENTS, state_pb2.ModelPlacement, on_placement),
                BucketWatch(subjects.KV_AUTOSCALER, state_pb2.ModelScaling, on_autoscaling),
                BucketWatch(subjects.KV_SERVERS, resources_pb2.Server, on_server),
                BucketWatch(subjects.KV_REPLICAS, state_pb2.ReplicaInfo, on_replica),
                BucketWatch(subjects.KV_SERVER_STATES, state_pb2.ServerState, on_usage),
                BucketWatch(subjects.KV_SCALE_REQUESTS, state_pb2.ServerScaleRequest, on_scale_request),
            ),
            _CATCH_UP_TIMEOUT,
            "status service",
        )
        deriver.start()
        # Progress is live only (no replay): listening after the catch-up loses nothing stored.
        self._progress = ProgressSubscriber(nc, deriver)
        await self._progress.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._progress is not None:
            await self._progress.close()
        if self.deriver is not None:
            self.deriver.close()
        await self._supervisor.close()
        await disconnect(self._nc)


def create() -> StatusApp:
    return StatusApp(StatusSettings.model_validate({}))
