"""Autoscaling end to end (issue 7): a real `modelplane up` with real MLServer replicas, the
autoscaler ticking fast (0.5 s interval, 2 s window) so a scenario takes seconds, not minutes.

- A load generator keeps requests in flight on a model with targetRequests 2: the model grows
  from 1 to 3 replicas, its Server from 1 to 3 (the scheduler asks, the autoscaler applies, up's
  launcher starts the agents); when the load stops both come back to 1.
- A model with minReplicas 0 goes to zero when idle; a request then is held by the gateway, wakes
  the autoscaler, and is answered once a replica is ready.

State is read through the api (the CLI's own client, in process: polling with a CLI process per
look would cost this 2-core machine more than the stack it watches) and, once per scenario,
through `modelplane model status` / `server status` as a user reads it.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from modelplane.cli.client import ApiClient, Credentials
from modelplane.proto import state_pb2
from tests.e2e.stack import UpProcess, wait_until
from tests.helpers.iris import IrisModel, build_iris_model
from tests.helpers.slow_iris import build_slow_iris_model

# Fast autoscaler ticks for the test: decisions every 0.5 s over a 2 s moving average (a new
# model's window starts full of zeros; a short one lets the average follow the load in seconds).
UP_ENV = {
    "MODELPLANE_AUTOSCALER_INTERVAL_SECONDS": "0.5",
    "MODELPLANE_AUTOSCALER_WINDOW_SECONDS": "2",
}

# Callers of the load generator, each with one request in flight at a time; each request takes
# SLOW_SECONDS in the model, so about CALLERS requests are in flight at any instant: with
# targetRequests 2 the model wants ceil(8 / 2) = 4 replicas, clamped to maxReplicas 3.
CALLERS = 8
SLOW_SECONDS = 0.5

SCALING_SERVER = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Server
metadata:
  name: scaling
spec:
  serverConfig: mlserver
  replicas: 1
  minReplicas: 1
  maxReplicas: 3
"""

AUTOSCALED_MODEL = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: {name}
spec:
  storageUri: file://{path}
  requirements: [sklearn]
{server}  replicas: 1
  minReplicas: {min_replicas}
  maxReplicas: {max_replicas}
  autoscaling:
    targetRequests: {target}
    scaleDownDelaySeconds: {delay}
"""


@pytest.fixture
def api(stack: UpProcess) -> Iterator[ApiClient]:
    with ApiClient(f"127.0.0.1:{stack.ports.api_grpc}", Credentials(stack.admin_token, None)) as client:
        yield client


def apply(stack: UpProcess, tmp_path: Path, name: str, manifest: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(manifest)
    done = stack.cli("apply", "-f", str(path))
    assert done.code == 0, done


def model_status(api: ApiClient, name: str) -> state_pb2.ResourceStatus:
    return api.get_status("Model", name).status


def server_status(api: ApiClient, name: str) -> state_pb2.ResourceStatus:
    return api.get_status("Server", name).status


def available(status: state_pb2.ResourceStatus) -> int:
    """Replicas of a model in state Available."""
    return sum(1 for r in status.replicas if r.state == "Available")


def model_replicas(api: ApiClient, name: str) -> int:
    """The model's desired replicas (spec.replicas, which the autoscaler sets)."""
    return api.get("Model", name).model.spec.replicas


def settled_at_zero(api: ApiClient, name: str) -> bool:
    """The model is at 0 replicas and nothing is still loading or unloading it: the scheduler
    acted on the latest generation and every replica it was on is Unloaded."""
    model = api.get("Model", name).model
    status = model_status(api, name)
    return (
        model.spec.replicas == 0
        and status.state == "ModelScaledDown"
        and status.observed_generation == model.meta.generation
        and all(r.state == "Unloaded" for r in status.replicas)
    )


def server_replicas(api: ApiClient, name: str) -> int:
    """The Server's desired replicas (spec.replicas, which the autoscaler sets)."""
    return api.get("Server", name).server.spec.replicas


def registered(api: ApiClient, name: str) -> int:
    """Replicas of a Server whose agents are registered (processes up's launcher runs)."""
    return len(api.server_replicas(name).replicas)


def infer(stack: UpProcess, name: str, iris: IrisModel, timeout: float = 60.0) -> tuple[int, list[int]]:
    """POST a v2 inference for 3 iris rows through the gateway: (HTTP status, predicted classes)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.ports.gateway_http}/v2/models/{name}/infer",
        data=json.dumps(iris.v2_request(rows=3)).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, list(json.loads(response.read())["outputs"][0]["data"])
    except urllib.error.HTTPError as exc:  # the gateway's answer says why
        raise AssertionError(f"{name}: {exc.code} {exc.read().decode(errors='replace')}") from None


class LoadGenerator:
    """``callers`` threads, each sending the next request as soon as the last is answered."""

    def __init__(self, stack: UpProcess, name: str, iris: IrisModel, callers: int) -> None:
        self.ok = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._expected = iris.expected[:3].tolist()
        self._threads = [
            threading.Thread(target=self._run, args=(stack, name, iris), name=f"load-{i}", daemon=True)
            for i in range(callers)
        ]

    def _run(self, stack: UpProcess, name: str, iris: IrisModel) -> None:
        while not self._stop.is_set():
            try:
                code, got = infer(stack, name, iris)
                failure = None if (code, got) == (200, self._expected) else f"{code} {got}"
            except (urllib.error.URLError, OSError) as exc:
                detail = (
                    exc.read().decode(errors="replace") if isinstance(exc, urllib.error.HTTPError) else ""
                )
                failure = f"{exc} {detail}"
            with self._lock:
                if failure is None:
                    self.ok += 1
                else:
                    self.failures.append(failure)

    def __enter__(self) -> LoadGenerator:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(90)

    def __exit__(self, *_: object) -> None:
        self.stop()


class StatusRecorder:
    """Every status change of one model, as the api's WatchStatus streams them."""

    def __init__(self, api: ApiClient, name: str, timeout: float) -> None:
        self.seen: list[state_pb2.ResourceStatus] = []
        self._lock = threading.Lock()
        self._stream = api.watch_status("Model", name, timeout)
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)

    def _run(self) -> None:
        try:
            for event in self._stream:
                with self._lock:
                    self.seen.append(event.status)
        except grpc.RpcError as exc:  # cancelled at the end (or the deadline passed)
            if exc.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise

    def snapshot(self) -> list[state_pb2.ResourceStatus]:
        with self._lock:
            return list(self.seen)

    def __enter__(self) -> StatusRecorder:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stream.cancel()  # type: ignore[attr-defined]
        self._thread.join(10)


def test_model_and_server_scale_up_under_load_and_back_down(
    stack: UpProcess, api: ApiClient, tmp_path: Path
) -> None:
    """Requests in flight grow a model (targetRequests 2) to 3 replicas and its Server to 3; when
    the load stops both come back to 1, and no request fails meanwhile."""
    apply(stack, tmp_path, "scaling", SCALING_SERVER)
    wait_until(lambda: server_status(api, "scaling").available_replicas == 1, 120, "server scaling ready")
    iris = build_slow_iris_model(tmp_path / "slow-iris", SLOW_SECONDS)
    apply(
        stack,
        tmp_path,
        "busy",
        AUTOSCALED_MODEL.format(
            name="busy",
            path=iris.path,
            server="  server: scaling\n",
            min_replicas=1,
            max_replicas=3,
            target=2,
            delay=2,
        ),
    )
    wait_until(lambda: available(model_status(api, "busy")) == 1, 120, "busy Available on one replica")
    assert infer(stack, "busy", iris) == (200, iris.expected[:3].tolist())

    with LoadGenerator(stack, "busy", iris, CALLERS) as load:
        wait_until(lambda: model_replicas(api, "busy") == 3, 60, "the autoscaler setting busy to 3 replicas")
        wait_until(lambda: server_replicas(api, "scaling") == 3, 60, "the autoscaler setting scaling to 3")
        wait_until(lambda: registered(api, "scaling") == 3, 180, "3 agents of scaling registered")
        wait_until(lambda: available(model_status(api, "busy")) == 3, 180, "busy Available on 3 replicas")
        scaling = model_status(api, "busy").autoscaling
        assert scaling.desired_replicas == 3, scaling
        assert "/ target 2 -> 3" in scaling.reason, scaling
        served = load.ok
        wait_until(lambda: load.ok > served + CALLERS, 60, "requests answered by the 3 replicas")
    assert load.failures == [], load.failures[:5]
    assert load.ok > 0

    # No load: after the scale-down delay the model goes back to minReplicas, then the Server's
    # emptied replicas go (their agents stopped by the launcher).
    wait_until(lambda: model_replicas(api, "busy") == 1, 60, "the autoscaler setting busy back to 1")
    wait_until(lambda: available(model_status(api, "busy")) == 1, 60, "busy on 1 replica")
    wait_until(lambda: server_replicas(api, "scaling") == 1, 90, "the autoscaler setting scaling back to 1")
    wait_until(lambda: registered(api, "scaling") == 1, 120, "scaling's extra agents stopped")
    wait_until(lambda: server_status(api, "scaling").available_replicas == 1, 60, "scaling at 1 replica")
    assert infer(stack, "busy", iris) == (200, iris.expected[:3].tolist())

    shown = stack.cli("model", "status", "busy")
    assert shown.code == 0, shown
    autoscaling_line = next(line for line in shown.out.splitlines() if "autoscaling: " in line)
    assert "/ target 2 -> 1" in autoscaling_line, shown.out
    server_shown = stack.cli("server", "status", "scaling")
    assert server_shown.code == 0, server_shown
    assert "replicas registered: 1" in server_shown.out, server_shown.out


def test_model_scales_to_zero_and_a_held_request_brings_it_back(
    stack: UpProcess, api: ApiClient, tmp_path: Path
) -> None:
    """An idle model with minReplicas 0 goes to 0 replicas; a request then is held (not failed),
    wakes the autoscaler and is answered once a replica is ready."""
    iris = build_iris_model(tmp_path / "iris")
    apply(
        stack,
        tmp_path,
        "sleepy",
        AUTOSCALED_MODEL.format(
            name="sleepy", path=iris.path, server="", min_replicas=0, max_replicas=2, target=1, delay=1
        ),
    )
    wait_until(lambda: model_replicas(api, "sleepy") == 0, 60, "the autoscaler setting sleepy to 0")
    wait_until(lambda: settled_at_zero(api, "sleepy"), 60, "sleepy scaled down with its replica unloaded")
    assert model_status(api, "sleepy").autoscaling.desired_replicas == 0

    with StatusRecorder(api, "sleepy", timeout=300) as recorder:
        code, got = infer(stack, "sleepy", iris, timeout=120)
        assert (code, got) == (200, iris.expected[:3].tolist())
        until_answer = len(recorder.snapshot())
        wait_until(lambda: any(is_wake(s) for s in recorder.snapshot()), 30, "the status showing the wake")
        seen = recorder.snapshot()

    def trail() -> list[tuple[str, int, int]]:
        return [(s.autoscaling.reason, s.autoscaling.desired_replicas, available(s)) for s in seen]

    first_wake = next(i for i, s in enumerate(seen) if is_wake(s))
    wake = seen[first_wake].autoscaling
    assert (wake.current_replicas, wake.desired_replicas) == (0, 1), wake
    # The replica that answered is the one the wake asked for: one Available after the wake ...
    assert any(available(s) == 1 for s in seen[first_wake:]), trail()
    # ... and the model was not sized back to zero while the request was still held for it.
    assert all(s.autoscaling.desired_replicas >= 1 for s in seen[first_wake:until_answer]), trail()


def is_wake(status: state_pb2.ResourceStatus) -> bool:
    """The status carries the autoscaler's scale-from-zero decision for a held request."""
    return status.autoscaling.reason == "request held at 0 replicas -> 1"
