"""`modelplane model load` follows the load: progress lines (or a bar on a terminal), exit codes.

The api and the status service run in-process on a real nats-server; progress is published on
NATS as the storage service does, and placements are written as the scheduler does.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.cli.progress import BarDisplay, Outcome, PlainDisplay, follow_load, load_outcome, progress_bar
from modelplane.cli.render import download_summary, format_size
from modelplane.libs import states, subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.store import TypedBucket
from modelplane.proto import agent_pb2, control_pb2, state_pb2
from modelplane.services.api.app import App
from modelplane.services.status.app import StatusApp
from modelplane.services.status.settings import StatusSettings

from .harness import Cli

MiB = 1 << 20
IRIS = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: iris
spec:
  storageUri: "s3://models/iris"
  requirements:
  - sklearn
"""


# ---- pure rendering ------------------------------------------------------------------------


def dl(
    phase: str, done: int = 0, total: int = 0, rate: float = 0.0, reason: str = ""
) -> state_pb2.DownloadStatus:
    return state_pb2.DownloadStatus(
        version=1, phase=phase, bytes_done=done, bytes_total=total, bytes_per_second=rate, reason=reason
    )


def test_sizes_read_like_people_write_them() -> None:
    """Byte counts print in B, then KiB/MiB/GiB with one decimal."""
    assert [format_size(v) for v in (0, 512, 1536, 45 * MiB, 3 << 30)] == [
        "0 B",
        "512 B",
        "1.5 KiB",
        "45.0 MiB",
        "3.0 GiB",
    ]


def test_download_summary_per_phase() -> None:
    """Each phase reads as one phrase: bytes and rate while downloading, the reason when failed."""
    assert download_summary(dl("downloading", 45 * MiB, 200 * MiB, 12.3 * MiB)) == (
        "downloading 45.0 MiB / 200.0 MiB at 12.3 MiB/s"
    )
    assert download_summary(dl("downloading", 45 * MiB)) == "downloading 45.0 MiB"
    assert download_summary(dl("cached", 200 * MiB, 200 * MiB)) == "cached"
    assert download_summary(dl("done", 200 * MiB, 200 * MiB)) == "done (200.0 MiB)"
    assert download_summary(dl("failed", reason="access denied")) == "failed: access denied"


def test_progress_bar_fills_with_the_fraction_done() -> None:
    """The bar is as full as the fraction downloaded and shows percent, bytes and rate."""
    line = progress_bar("iris", dl("downloading", 50 * MiB, 200 * MiB, 10 * MiB), columns=100)
    assert line == f"iris v1 [{'#' * 7}{'.' * 23}]  25% 50.0 MiB / 200.0 MiB  10.0 MiB/s"
    full = progress_bar("iris", dl("downloading", 200 * MiB, 200 * MiB), columns=100)
    assert f"[{'#' * 30}] 100%" in full


def test_progress_bar_fits_narrow_terminals_and_unknown_sizes() -> None:
    """The line never exceeds the terminal width; without a total there are bytes and rate only."""
    for columns in (20, 40, 60):
        assert len(progress_bar("iris", dl("downloading", 5 * MiB, 200 * MiB, MiB), columns)) <= columns
    assert progress_bar("iris", dl("downloading", 5 * MiB, 0, MiB)) == "iris v1 5.0 MiB  1.0 MiB/s"


def test_bar_display_redraws_in_place_and_prints_states_on_their_own_line() -> None:
    """On a terminal the bar is rewritten in place; a state line first clears the bar."""
    out = io.StringIO()
    display = BarDisplay(out, columns=lambda: 100)
    display.download("iris", dl("downloading", 10 * MiB, 200 * MiB), True)
    display.download("iris", dl("downloading", 20 * MiB, 200 * MiB), False)
    display.download("iris", dl("done", 200 * MiB, 200 * MiB), True)
    display.state(
        "iris", state_pb2.ResourceStatus(state="ModelAvailable", available_replicas=1, total_replicas=1)
    )
    display.finish()
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 2
    assert text.endswith(
        "model/iris: version 1 done (200.0 MiB)\nmodel/iris: ModelAvailable (1/1 replicas)\n"
    )
    assert "\n" not in text.split("model/iris: version 1 done")[0]


def test_load_outcome_counts_only_the_applied_generation() -> None:
    """Available or Failed end the wait only once the status describes the applied generation."""
    old = state_pb2.ResourceStatus(state="ModelAvailable", observed_generation=1)
    assert load_outcome(old, 2) is Outcome.WAITING
    assert load_outcome(old, 1) is Outcome.READY
    failed = state_pb2.ResourceStatus(state="ModelFailed", observed_generation=2)
    assert load_outcome(failed, 2) is Outcome.FAILED
    assert load_outcome(state_pb2.ResourceStatus(state="ScheduleFailed", observed_generation=2), 2) is (
        Outcome.WAITING
    )


def test_follow_prints_each_phase_once_and_never_goes_back() -> None:
    """Reports within a phase print nothing; a status copy lagging behind the live relay is ignored."""
    lines: list[str] = []
    progressing = state_pb2.ResourceStatus(state="ModelProgressing", reason="0 of 1", observed_generation=1)
    lagging = state_pb2.ResourceStatus()
    lagging.CopyFrom(progressing)
    lagging.downloads.append(dl("downloading", 90 * MiB, 200 * MiB))
    available = state_pb2.ResourceStatus(
        state="ModelAvailable", available_replicas=1, total_replicas=1, observed_generation=1
    )
    events = [
        control_pb2.FollowModelEvent(status=progressing),
        control_pb2.FollowModelEvent(download=dl("downloading", 10 * MiB, 200 * MiB)),
        control_pb2.FollowModelEvent(download=dl("downloading", 90 * MiB, 200 * MiB)),
        control_pb2.FollowModelEvent(download=dl("done", 200 * MiB, 200 * MiB)),
        control_pb2.FollowModelEvent(status=lagging),
        control_pb2.FollowModelEvent(status=available),
        control_pb2.FollowModelEvent(status=progressing),  # never read: the load is over
    ]
    outcome, last = follow_load(iter(events), "iris", 1, PlainDisplay(lines.append))
    assert (outcome, last.state) == (Outcome.READY, "ModelAvailable")
    assert lines == [
        "model/iris: ModelProgressing (0 of 1)",
        "model/iris: version 1 downloading 10.0 MiB / 200.0 MiB",
        "model/iris: version 1 done (200.0 MiB)",
        "model/iris: ModelAvailable (1/1 replicas)",
    ]


# ---- against the api, the status service and NATS -----------------------------------------


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.05)


@pytest.fixture
async def status_app(nats_server: EmbeddedNats) -> AsyncIterator[StatusApp]:
    app = StatusApp(StatusSettings.model_validate({"nats_url": nats_server.url}))
    await app.start()
    try:
        yield app
    finally:
        await app.close()


async def publish(nc: NATS, phase: str, done: int, total: int = 200 * MiB, rate: float = 12 * MiB) -> None:
    event = agent_pb2.FetchProgress(
        model="iris",
        version=1,
        uri="s3://models/iris",
        bytes_done=done,
        bytes_total=total,
        bytes_per_second=rate,
        phase=phase,
    )
    await nc.publish(subjects.storage_progress("iris"), event.SerializeToString())


async def place(js: JetStreamContext, state: int, reason: str = "") -> None:
    """Write iris's placement as the scheduler does (generation 1, one replica)."""
    placements = await TypedBucket.open(js, subjects.KV_PLACEMENTS, state_pb2.ModelPlacement)
    await placements.put(
        "iris",
        state_pb2.ModelPlacement(
            model="iris",
            generation=1,
            versions=[
                state_pb2.ModelVersionPlacement(
                    version=1,
                    replicas=[
                        state_pb2.ReplicaAssignment(server="mlserver", index=0, state=state, reason=reason)  # type: ignore[arg-type]
                    ],
                )
            ],
        ),
    )


async def stored_downloads(js: JetStreamContext) -> list[tuple[str, int]]:
    statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    found = await statuses.try_get(subjects.status_key("Model", "iris"))
    return [(d.phase, d.bytes_done) for d in found.value.downloads] if found else []


async def start_load(run_cli: Cli, api_app: App, tmp_path: Path, *args: str) -> asyncio.Future[object]:
    """Start `model load -f iris.yaml` and return once it follows the model."""
    manifest = tmp_path / "iris.yaml"
    manifest.write_text(IRIS)
    running: asyncio.Future[object] = asyncio.ensure_future(
        run_cli("model", "load", "-f", str(manifest), *args)
    )

    async def following() -> bool:
        if running.done():
            raise AssertionError(f"model load ended early: {running.result()}")
        return api_app.handler.following > 0

    await eventually(following)
    return running


async def test_load_prints_phase_lines_and_ends_available(
    run_cli: Cli, api_app: App, status_app: StatusApp, js: JetStreamContext, nc: NATS, tmp_path: Path
) -> None:
    """Without a terminal, load prints one line per download phase (not per report) and the
    final state, and exits 0 once the model is ModelAvailable."""
    running = await start_load(run_cli, api_app, tmp_path)
    await place(js, states.LOADING)
    await publish(nc, "downloading", 45 * MiB)

    async def shows(phase: str, done: int) -> bool:
        return await stored_downloads(js) == [(phase, done)]

    await eventually(lambda: shows("downloading", 45 * MiB))
    for done in (90, 135, 180):
        await publish(nc, "downloading", done * MiB)
    await publish(nc, "done", 200 * MiB, rate=0.0)
    await eventually(lambda: shows("done", 200 * MiB))
    await place(js, states.AVAILABLE)
    result = await running
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lines = result.stdout.splitlines()  # type: ignore[attr-defined]
    assert lines[0] == "model/iris created"
    assert lines[-1] == "model/iris: ModelAvailable (1/1 replicas)"
    assert (
        lines.count(
            "model/iris: version 1 downloading 45.0 MiB / 200.0 MiB at 12.0 MiB/s from s3://models/iris"
        )
        == 1
    )
    assert [line for line in lines if "version 1" in line][1:] == ["model/iris: version 1 done (200.0 MiB)"]
    shown = await run_cli("model", "status", "iris")
    assert "    version 1: done (200.0 MiB)" in shown.stdout


async def test_load_relays_live_progress_without_the_status_service(
    run_cli: Cli, api_app: App, js: JetStreamContext, nc: NATS, tmp_path: Path
) -> None:
    """The api relays NATS progress directly; a load of an unchanged, available model returns at once."""
    running = await start_load(run_cli, api_app, tmp_path)
    await publish(nc, "downloading", 10 * MiB, rate=2 * MiB)
    statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    available = state_pb2.ResourceStatus(
        kind="Model",
        name="iris",
        state="ModelAvailable",
        available_replicas=1,
        total_replicas=1,
        version=1,
        generation=1,
        observed_generation=1,
    )
    # One server, published in this order: the api receives the report before the KV update
    # (which goes through JetStream), and its relay queues it with fewer hops than the watch.
    await statuses.put(subjects.status_key("Model", "iris"), available)
    result = await running
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "model/iris: version 1 downloading 10.0 MiB / 200.0 MiB at 2.0 MiB/s from s3://models/iris" in (
        result.stdout  # type: ignore[attr-defined]
    )
    again = await run_cli("model", "load", "-f", str(tmp_path / "iris.yaml"))
    assert (again.exit_code, again.stdout) == (
        0,
        "model/iris unchanged\nmodel/iris: ModelAvailable (1/1 replicas)\n",
    )


async def test_load_exits_1_with_the_reason_when_the_model_fails(
    run_cli: Cli, api_app: App, status_app: StatusApp, js: JetStreamContext, nc: NATS, tmp_path: Path
) -> None:
    """A failed download and load ends `model load` with exit 1 and the agent's reason."""
    running = await start_load(run_cli, api_app, tmp_path)
    await place(js, states.LOADING)
    await publish(nc, "failed", 3 * MiB, rate=0.0)
    await place(js, states.LOAD_FAILED, reason="s3://models/iris: access denied")
    result = await running
    assert result.exit_code == 1  # type: ignore[attr-defined]
    assert result.stderr == (  # type: ignore[attr-defined]
        "Error: model iris failed to load: it is ModelFailed (s3://models/iris: access denied)\n"
    )
    assert any(
        line.startswith("model/iris: version 1 failed")
        for line in result.stdout.splitlines()  # type: ignore[attr-defined]
    )


async def test_load_times_out_with_the_state_it_saw_last(run_cli: Cli, tmp_path: Path) -> None:
    """When the model is not available in time, load exits 1 saying its last state."""
    manifest = tmp_path / "iris.yaml"
    manifest.write_text(IRIS)
    result = await run_cli("model", "load", "-f", str(manifest), "--timeout", "0.5")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: timed out after 0.5s waiting for model iris to be ModelAvailable: it is ModelStateUnknown "
        "(waiting for status); it goes on loading (see `modelplane model status iris`)\n"
    )
    assert result.stdout.splitlines() == [
        "model/iris created",
        "model/iris: ModelStateUnknown (waiting for status)",
    ]


async def test_no_wait_returns_once_accepted(run_cli: Cli, tmp_path: Path) -> None:
    """--no-wait keeps the old behaviour: one line per manifest, exit 0, no following."""
    manifest = tmp_path / "iris.yaml"
    manifest.write_text(IRIS)
    result = await run_cli("model", "load", "--no-wait", "-f", str(manifest))
    assert (result.exit_code, result.stdout) == (0, "model/iris created\n")
