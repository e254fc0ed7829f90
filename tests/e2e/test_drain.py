"""Drain end to end: a replica stopped by a scale-down keeps serving until its models are
Available elsewhere, then exits; a client looping throughout sees no failed request."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.stack import UpProcess, wait_until
from tests.e2e.test_scheduling import Looper, apply_model, infer, placed_on, status
from tests.helpers.iris import build_iris_model

POOL = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Server
metadata:
  name: pool
spec:
  serverConfig: mlserver
  extraCapabilities: [pool-cap]
  replicas: {replicas}
"""


def test_scale_down_drains_the_replica_without_failed_requests(stack: UpProcess, tmp_path: Path) -> None:
    """Scaling a Server down moves the stopped replica's models first; no request fails meanwhile."""
    manifest = tmp_path / "pool.yaml"
    manifest.write_text(POOL.format(replicas=2))
    assert stack.cli("apply", "-f", str(manifest)).code == 0
    wait_until(
        lambda: status(stack, "server", "pool").get("availableReplicas") == 2, 120, "pool with 2 replicas"
    )
    iris = build_iris_model(tmp_path / "iris")

    # Two models of 10Mi: the replica sorter puts the second on the replica with more free memory, so
    # one of them is on pool.1, the replica a scale-down stops.
    for name in ("first", "second"):
        apply_model(stack, tmp_path, name, iris, ["sklearn", "pool-cap"], extra="  memory: 10Mi\n")
        wait_until(lambda n=name: len(placed_on(stack, n)) == 1, 90, f"{name} placed")
    on_stopped = [n for n in ("first", "second") if placed_on(stack, n) == {"pool.1"}]
    assert on_stopped, {n: placed_on(stack, n) for n in ("first", "second")}
    moving = on_stopped[0]
    assert infer(stack, moving, iris) == iris.expected[:3].tolist()

    with Looper(stack, moving, iris) as looper:
        wait_until(lambda: looper.ok > 5, 30, "requests flowing before the scale-down")
        manifest.write_text(POOL.format(replicas=1))
        assert stack.cli("apply", "-f", str(manifest)).code == 0
        wait_until(lambda: placed_on(stack, moving) == {"pool.0"}, 90, f"{moving} moved to pool.0")
        wait_until(lambda: "replica_drained" in stack.log_tail(2000), 60, "the agent of pool.1 drained")
        wait_until(lambda: status(stack, "server", "pool").get("availableReplicas") == 1, 60, "pool at 1")
        served = looper.ok
        wait_until(lambda: looper.ok > served + 5, 30, "requests answered after the drain")
    assert looper.failures == [], looper.failures[:5]
