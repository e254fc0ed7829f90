"""Download progress in a model's status: kept per version, throttled, settled by the replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs import states, subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.store import TypedBucket
from modelplane.libs.tasks import KeyedWorkers, TaskSupervisor
from modelplane.proto import agent_pb2, resources_pb2, state_pb2
from modelplane.services.status.app import StatusApp
from modelplane.services.status.handler import StatusDeriver
from modelplane.services.status.settings import StatusSettings
from modelplane.services.status.types import (
    AssignmentView,
    DownloadView,
    ModelView,
    PlacementView,
    Status,
    VersionView,
)

from .test_status_app import eventually, status_of

IRIS = ModelView("iris", generation=1, replicas=1, min_replicas=0)
MiB = 1 << 20


class RecordingOutputs:
    """StatusOutputs that keeps every write in order."""

    def __init__(self) -> None:
        self.writes: list[Status] = []

    async def put(self, key: str, status: Status) -> None:
        self.writes.append(status)

    async def delete(self, key: str) -> None:
        pass

    @property
    def last(self) -> Status:
        """The last write (an empty status before any)."""
        return self.writes[-1] if self.writes else Status("Model", "iris", "")


def placement(state: int, version: int = 1, reason: str = "") -> PlacementView:
    return PlacementView(
        "iris", (VersionView(version, (AssignmentView("mlserver", 0, state, reason),)),), generation=1
    )


def downloading(done: int, version: int = 1) -> DownloadView:
    return DownloadView(version, "downloading", done * MiB, 200 * MiB, 12.0 * MiB, "s3://models/iris")


async def until(check: Callable[[], bool]) -> None:
    async def probe() -> bool:
        return check()

    await eventually(probe)


@pytest.fixture
async def supervisor() -> AsyncIterator[TaskSupervisor]:
    sup = TaskSupervisor("test-status")
    yield sup
    await sup.close()


def deriver(
    supervisor: TaskSupervisor, outputs: RecordingOutputs, interval: float, **kw: object
) -> StatusDeriver:
    d = StatusDeriver(
        outputs,
        KeyedWorkers(supervisor, "status"),
        clock=lambda: "t",
        progress_interval=interval,
        **kw,  # type: ignore[arg-type]
    )
    d.model_changed("iris", IRIS)
    d.placement_changed("iris", placement(states.LOADING))
    d.start()
    return d


def download_of(status: Status) -> DownloadView:
    (only,) = status.downloads
    return only


async def test_downloading_report_shows_in_the_status(supervisor: TaskSupervisor) -> None:
    """A downloading report appears in the model's status with its version, bytes, rate and URI."""
    outputs = RecordingOutputs()
    d = deriver(supervisor, outputs, 0.5)
    d.download_progressed("iris", downloading(45))
    await until(lambda: bool(outputs.writes) and bool(outputs.last.downloads))
    assert download_of(outputs.last) == downloading(45)
    assert outputs.last.observed_generation == 1
    d.close()


async def test_reports_within_the_interval_make_no_write_but_a_phase_change_does(
    supervisor: TaskSupervisor,
) -> None:
    """Within one throttle interval, further downloading reports write nothing; `done` writes at once."""
    outputs = RecordingOutputs()
    d = deriver(supervisor, outputs, 3600.0, monotonic=lambda: 0.0)
    d.download_progressed("iris", downloading(1))
    await until(lambda: bool(outputs.writes) and bool(outputs.last.downloads))
    before = len(outputs.writes)
    for done in range(2, 100):
        d.download_progressed("iris", downloading(done))
    d.download_progressed("iris", DownloadView(1, "done", 200 * MiB, 200 * MiB, 0.0, "s3://models/iris"))
    await until(lambda: download_of(outputs.last).phase == "done")
    assert len(outputs.writes) == before + 1
    assert download_of(outputs.last).bytes_done == 200 * MiB
    d.close()


async def test_throttled_reports_are_written_when_the_interval_ends(supervisor: TaskSupervisor) -> None:
    """The latest report held back by the throttle is written once its interval is over."""
    outputs = RecordingOutputs()
    d = deriver(supervisor, outputs, 0.05)
    d.download_progressed("iris", downloading(1))
    d.download_progressed("iris", downloading(2))
    d.download_progressed("iris", downloading(3))
    await until(lambda: bool(outputs.writes) and download_of(outputs.last).bytes_done == 3 * MiB)
    d.close()


async def test_a_loaded_version_shows_done_even_without_the_last_report(supervisor: TaskSupervisor) -> None:
    """Once a replica holds the version, a download still marked downloading shows done."""
    outputs = RecordingOutputs()
    d = deriver(supervisor, outputs, 0.5)
    d.download_progressed("iris", downloading(45))
    d.placement_changed("iris", placement(states.AVAILABLE))
    await until(lambda: outputs.last.state == states.MODEL_AVAILABLE)
    assert download_of(outputs.last).phase == "done"
    d.close()


async def test_failed_download_takes_the_load_failure_reason(supervisor: TaskSupervisor) -> None:
    """A failed download shows the reason the agent gave for the failed load."""
    outputs = RecordingOutputs()
    d = deriver(supervisor, outputs, 0.5)
    d.download_progressed("iris", DownloadView(1, "failed", 3 * MiB, 200 * MiB, 0.0, "s3://models/iris"))
    d.placement_changed("iris", placement(states.LOAD_FAILED, reason="s3://models/iris: access denied"))
    await until(lambda: outputs.last.state == states.MODEL_FAILED)
    download = download_of(outputs.last)
    assert (download.phase, download.reason) == ("failed", "s3://models/iris: access denied")
    d.close()


async def test_reports_of_versions_no_longer_placed_are_dropped(supervisor: TaskSupervisor) -> None:
    """When the placement moves on to version 2, version 1's download leaves the status."""
    outputs = RecordingOutputs()
    d = deriver(supervisor, outputs, 0.5)
    d.download_progressed("iris", DownloadView(1, "cached", 200 * MiB, 200 * MiB))
    d.download_progressed("iris", downloading(10, version=2))
    d.placement_changed("iris", placement(states.LOADING, version=2))
    await until(lambda: outputs.last.version == 2)
    assert [x.version for x in outputs.last.downloads] == [2]
    d.close()


async def test_progress_published_on_nats_reaches_the_stored_status(
    nats_server: EmbeddedNats, js: JetStreamContext, nc: NATS
) -> None:
    """FetchProgress on the model's progress subject shows in KV_STATUS: downloading, then cached."""
    app = StatusApp(StatusSettings.model_validate({"nats_url": nats_server.url}))
    models = await TypedBucket.open(js, subjects.KV_MODELS, resources_pb2.Model)
    placements = await TypedBucket.open(js, subjects.KV_PLACEMENTS, state_pb2.ModelPlacement)
    await models.put(
        "iris",
        resources_pb2.Model(
            meta=resources_pb2.ObjectMeta(name="iris", generation=1),
            spec=resources_pb2.ModelSpec(storage_uri="s3://models/iris", replicas=1),
        ),
    )
    await placements.put(
        "iris",
        state_pb2.ModelPlacement(
            model="iris",
            generation=1,
            versions=[
                state_pb2.ModelVersionPlacement(
                    version=1,
                    replicas=[state_pb2.ReplicaAssignment(server="mlserver", index=0, state=states.LOADING)],
                )
            ],
        ),
    )

    async def publish(phase: str, done: int) -> None:
        event = agent_pb2.FetchProgress(
            model="iris",
            version=1,
            uri="s3://models/iris",
            bytes_done=done,
            bytes_total=200 * MiB,
            phase=phase,
        )
        await nc.publish(subjects.storage_progress("iris"), event.SerializeToString())

    async def phase_is(phase: str, done: int) -> bool:
        s = await status_of(js, "Model", "iris")
        return s is not None and [(d.phase, d.bytes_done) for d in s.downloads] == [(phase, done)]

    try:
        await app.start()
        await publish("downloading", 45 * MiB)
        await eventually(lambda: phase_is("downloading", 45 * MiB))
        s = await status_of(js, "Model", "iris")
        assert s is not None
        assert s.observed_generation == 1
        await publish("cached", 200 * MiB)
        await eventually(lambda: phase_is("cached", 200 * MiB))
    finally:
        await app.close()
