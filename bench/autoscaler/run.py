"""``python -m bench.autoscaler``: how fast replicas follow load, against a real ``modelplane up``.

1. Scale-up time. A Server holds ``--max-replicas`` MLServer replicas (min = max: already running,
   so this measures the model's path, not MLServer starting; each replica has loaded an sklearn
   model once before, unless ``--fresh-replicas``, since a fresh MLServer imports the runtime on
   its first load, which takes seconds). A model with
   ``autoscaling.targetRequests`` T starts at 1 replica; ``--callers`` N closed-loop callers
   start at once through the gateway. Measured: from the load's start until the model's status
   shows the desired replicas available (desired = min(ceil(N / T), max)), and on the way the
   first load report, the autoscaler's first scale-up decision, its decision reaching the desired
   count, the api writing spec.replicas, the scheduler assigning replicas, the agents loading
   them, the routes and the status. Most of it is the autoscaler's moving average filling up: a
   new model's window starts full of zeros (KubeAI's semantics), so the interval and window
   (printed) set the time to decide.

2. Cold start at zero replicas, ``--cycles`` times. A model with minReplicas 0 is left to scale
   to zero (until MLServer no longer holds it); then one request goes to the gateway, which holds
   it, wakes the autoscaler (ModelWake), and answers once a replica is ready. Its latency is split
   into MLServer time (measured in the same cycle on a bare MLServer process configured as the
   stack's replicas: repository load of the same model files, then the first inference) and the
   rest, the control plane's time. Issue 7's target: control plane under 200 ms (median).

Every offset is seen from outside, as any NATS client could: KV watches and the gateways'
events, stamped when they arrive here. Nothing fails on a figure: the run prints what it saw.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.autoscaler import milestones as m
from bench.autoscaler.callers import Callers
from bench.autoscaler.figures import (
    TARGET_CONTROL_PLANE_SECONDS,
    ColdSplit,
    Summary,
    control_plane_met,
    median_seen,
    ms,
    secs,
    since_previous,
    split_cold_starts,
)
from bench.autoscaler.observer import LOAD, WAKE, Observer
from bench.autoscaler.stack import (
    Api,
    BareMLServer,
    BenchUp,
    model_manifest,
    replica_parallel_workers,
    server_manifest,
)
from bench.gateway.load import RestClient, rows_of
from modelplane.libs import subjects
from modelplane.libs.tasks import TaskSupervisor
from tests.e2e.stack import Ports
from tests.helpers.iris import IrisModel, build_iris_model

SERVER = "mlserver"  # the default Server of `up`, re-applied with more replicas
LOAD_MODEL = "iris-load"
COLD_MODEL = "iris-cold"
WARM_MODEL = "iris-warm"
# Seconds to wait for the stack, a model's first replica, or a model to reach zero.
READY_TIMEOUT = 180.0
# The load model does not scale down while it is measured.
LOAD_SCALE_DOWN_DELAY = 300.0


@dataclass(frozen=True, slots=True)
class Milestone:
    label: str
    source: str
    check: Callable[[Any], bool]


def _status_key(model: str) -> str:
    return subjects.status_key("Model", model)


def _way_to(model: str, replicas: int) -> list[Milestone]:
    """The milestones of ``model`` on its way to ``replicas`` ready replicas, in path order."""
    return [
        Milestone("decided", subjects.KV_AUTOSCALER, lambda v: m.desired_replicas(v) >= replicas),
        Milestone("spec", subjects.KV_MODELS, lambda v: m.spec_replicas(v) >= replicas),
        Milestone("assigned", subjects.KV_PLACEMENTS, lambda v: m.assigned_replicas(v) >= replicas),
        Milestone("loading", subjects.KV_PLACEMENTS, lambda v: m.loading_replicas(v) >= replicas),
        Milestone("loaded", subjects.KV_PLACEMENTS, lambda v: m.loaded_replicas(v) >= replicas),
        Milestone("routed", subjects.KV_ROUTES, lambda v: m.routed_endpoints(v) >= replicas),
        Milestone("status", subjects.KV_STATUS, lambda v: m.available_replicas(v) >= replicas),
    ]


def _key(model: str, source: str) -> str:
    return _status_key(model) if source == subjects.KV_STATUS else model


def _offsets(seen: Observer, model: str, marks: list[Milestone], start: float) -> list[float | None]:
    out: list[float | None] = []
    for mark in marks:
        found = seen.timeline.first(mark.source, _key(model, mark.source), mark.check, start)
        out.append(found.at - start if found is not None else None)
    return out


def _knobs(args: argparse.Namespace) -> dict[str, str]:
    """The environment of `up` (its children inherit it): the autoscaler's knobs, shortened."""
    return {
        "MODELPLANE_AUTOSCALER_INTERVAL_SECONDS": f"{args.interval:g}",
        "MODELPLANE_AUTOSCALER_WINDOW_SECONDS": f"{args.window:g}",
        "MODELPLANE_AUTOSCALER_STALE_AFTER_SECONDS": f"{args.stale_after:g}",
        "MODELPLANE_GATEWAY_LOAD_REPORT_INTERVAL": f"{args.load_report_interval:g}",
        "MODELPLANE_LOG_LEVEL": "warning",
    }


async def _wait_model_route(seen: Observer, model: str) -> None:
    """Until the gateway knows ``model`` (it has a route, with or without endpoints)."""
    await seen.wait_for(
        lambda: True if seen.timeline.latest(subjects.KV_ROUTES, model) is not None else None,
        READY_TIMEOUT,
        f"a route for {model}",
    )


async def _wait_available(seen: Observer, model: str, replicas: int) -> None:
    await seen.wait_for(
        lambda: (
            True
            if m.available_replicas(seen.timeline.latest(subjects.KV_STATUS, _status_key(model))) >= replicas
            else None
        ),
        READY_TIMEOUT,
        f"{model} to have {replicas} available replica(s)",
    )


async def _warm_replicas(args: argparse.Namespace, api: Api, seen: Observer, iris: IrisModel) -> None:
    """Load an sklearn model once on every replica (then delete it), so the scale-up measures
    the model's path rather than each fresh MLServer importing the runtime on its first load."""
    started = time.perf_counter()
    replicas = args.max_replicas
    await api.apply(
        model_manifest(WARM_MODEL, iris.path, replicas=replicas, min_replicas=replicas, max_replicas=replicas)
    )
    await _wait_available(seen, WARM_MODEL, replicas)
    await api.delete("Model", WARM_MODEL)
    print(
        f"replicas warmed in {time.perf_counter() - started:.1f} s ({WARM_MODEL} loaded on all "
        f"{replicas}, then deleted; --fresh-replicas skips this)"
    )


# ---- 1. scale-up time -------------------------------------------------------------------------
async def scale_up(
    args: argparse.Namespace, api: Api, seen: Observer, up: BenchUp, iris: IrisModel, bare_first_load: float
) -> None:
    """``bare_first_load``: seconds a fresh bare MLServer took for its first model load."""
    desired = min(args.max_replicas, math.ceil(args.callers / args.target))
    print(
        f"== 1. scale-up: {args.callers} closed-loop callers on {LOAD_MODEL} (targetRequests "
        f"{args.target:g}, replicas 1, maxReplicas {args.max_replicas}) -> desired "
        f"min(ceil({args.callers} / {args.target:g}), {args.max_replicas}) = {desired} =="
    )
    await api.apply(
        model_manifest(
            LOAD_MODEL,
            iris.path,
            replicas=1,
            min_replicas=1,
            max_replicas=args.max_replicas,
            target_requests=args.target,
            scale_down_delay_seconds=LOAD_SCALE_DOWN_DELAY,
        )
    )
    await _wait_available(seen, LOAD_MODEL, 1)
    client = RestClient(up.gateway_http, LOAD_MODEL, rows_of(iris.X, 1))
    callers = Callers(client, args.callers)
    stop = asyncio.Event()
    tasks = TaskSupervisor("bench-load")
    marks = [
        Milestone("load reported", LOAD, lambda v: m.in_flight(v) > 0),
        Milestone("first scale-up", subjects.KV_AUTOSCALER, lambda v: m.desired_replicas(v) > 1),
        *_way_to(LOAD_MODEL, desired),
    ]
    try:
        await client.infer()  # the connection is open before the clock starts
        started = time.perf_counter()
        tasks.spawn("callers", callers.run(stop))
        reached = True
        try:
            await _wait_available(seen, LOAD_MODEL, desired)
        except TimeoutError as exc:
            reached = False
            print(f"NOT reached: {exc}")
        ended = time.perf_counter()
    finally:
        stop.set()
        await tasks.close(timeout=30)
        await client.close()
    offsets = _offsets(seen, LOAD_MODEL, marks, started)
    steps = since_previous(offsets)
    print(f"{f'milestone (to {desired} replicas)':<32} {'since load start':>16} {'step':>9}")
    for mark, offset, step in zip(marks, offsets, steps, strict=True):
        print(f"{mark.label:<32} {secs(offset, 16)} {secs(step, 9)}")
    at = {mark.label: offset for mark, offset in zip(marks, offsets, strict=True)}
    decided, loading, loaded = at["decided"], at["loading"], at["loaded"]
    if reached and decided is not None:
        total = ended - started
        print(
            f"total {total:.2f} s = {decided:.2f} s until the autoscaler decided {desired} (interval "
            f"{args.interval:g} s, window {args.window:g} s) + {total - decided:.2f} s from the decision "
            f"to {desired} replicas available"
        )
    if loading is not None and loaded is not None and args.fresh_replicas:
        print(
            f"of which loading -> loaded {loaded - loading:.2f} s: the agents' load on replicas that had "
            f"not loaded a model yet, under load (MLServer imports the sklearn runtime first; the bare "
            f"MLServer's first load took {bare_first_load:.2f} s on an idle stack)"
        )
    print("autoscaler decisions during the load (KV_AUTOSCALER):")
    for item in seen.timeline.between(subjects.KV_AUTOSCALER, LOAD_MODEL, started, ended):
        if item.value is not None:
            print(f"  {secs(item.at - started, 8)}  {item.value.reason}")
    elapsed = ended - started
    print(
        f"load: {callers.answered} answered ({callers.answered / elapsed:.0f} req/s), "
        f"{callers.failed} failed{': ' + callers.last_error if callers.failed else ''}"
    )
    await api.delete("Model", LOAD_MODEL)


# ---- 2. cold start at zero ----------------------------------------------------------------------
def _at_zero(seen: Observer, model: str) -> bool | None:
    t = seen.timeline
    zero = (
        m.spec_replicas(t.latest(subjects.KV_MODELS, model)) == 0
        and m.resident_replicas(t.latest(subjects.KV_PLACEMENTS, model)) == 0
        and m.routed_endpoints(t.latest(subjects.KV_ROUTES, model)) == 0
    )
    return True if zero else None


@dataclass(frozen=True, slots=True)
class ColdCycle:
    # Offsets of the milestones from the request (None: not seen).
    offsets: list[float | None]
    latency: float
    # The bare MLServer's repository load and first inference, this cycle.
    bare_load: float
    bare_infer: float
    # The replica that answered ("<server>.<index>").
    replica: str


COLD_LEGEND = (
    "wake: the gateway's ModelWake; decided: the autoscaler's record (replicas 1); spec: the api wrote "
    "spec.replicas 1; assigned: the scheduler placed it; loading / loaded: the agent started / "
    "reported the load (artifact from the storage cache, copy, MLServer load); routed: the gateway's "
    "route has the endpoint; status: availableReplicas 1; answered: the held request's answer"
)


async def cold_starts(
    args: argparse.Namespace, api: Api, seen: Observer, up: BenchUp, bare: BareMLServer
) -> None:
    print(
        f"== 2. cold start at zero: {COLD_MODEL} (minReplicas 0, maxReplicas 1, scaleDownDelaySeconds "
        f"{args.cold_scale_down_delay:g}); per cycle: wait until at zero (spec.replicas 0, unloaded, no "
        "route endpoint), bare MLServer load + first infer, then one request through the gateway =="
    )
    body = orjson.dumps(bare.model.v2_request(rows=1))
    client = RestClient(up.gateway_http, COLD_MODEL, rows_of(bare.model.X, 1))
    marks = [Milestone("wake", WAKE, lambda v: v is not None), *_way_to(COLD_MODEL, 1)]
    cycles: list[ColdCycle] = []
    try:
        await _wait_model_route(seen, COLD_MODEL)
        for cycle in range(args.warmup_cycles + args.cycles):
            await seen.wait_for(lambda: _at_zero(seen, COLD_MODEL), READY_TIMEOUT, f"{COLD_MODEL} at zero")
            bare_load, bare_infer = await bare.load_and_answer(body)
            started = time.perf_counter()
            await client.infer()
            latency = time.perf_counter() - started
            # The status may follow the answer: its change is awaited, outside the latency.
            await _wait_available(seen, COLD_MODEL, 1)
            placement = seen.timeline.latest(subjects.KV_PLACEMENTS, COLD_MODEL)
            replica = ",".join(m.serving_replicas(placement)) or "?"
            if cycle < args.warmup_cycles:
                print(
                    f"warm-up {cycle + 1} (not counted): {ms(latency)} through the stack (replica {replica}); "
                    f"bare MLServer {ms(bare_load + bare_infer)}"
                )
                continue
            offsets = _offsets(seen, COLD_MODEL, marks, started)
            cycles.append(ColdCycle(offsets, latency, bare_load, bare_infer, replica))
    finally:
        await client.close()
    _print_cold(marks, cycles)


def _print_cold(marks: list[Milestone], cycles: list[ColdCycle]) -> None:
    labels = [mark.label for mark in marks] + ["answered"]
    print("milestones, ms after the request was sent (seen from outside, in path order):")
    print(f"  ({COLD_LEGEND})")
    width = 9
    header = "".join(f"{label:>{width}}" for label in labels)
    print(
        f"{'cycle':>5} {'replica':>10}{header} | {'bare load':>9} {'1st infer':>9} {'MLServer':>9} | "
        f"{'ctrl plane':>10} {'share':>5}"
    )
    splits = split_cold_starts([c.latency for c in cycles], [c.bare_load + c.bare_infer for c in cycles])
    for index, (cycle, split) in enumerate(zip(cycles, splits, strict=True), start=1):
        cells = "".join(ms(offset, width) for offset in [*cycle.offsets, cycle.latency])
        print(
            f"{index:>5} {cycle.replica:>10}{cells} | {ms(cycle.bare_load, 9)} {ms(cycle.bare_infer, 9)} "
            f"{ms(split.mlserver, 9)} | {ms(split.control_plane, 10)} {split.share:>5.0%}"
        )
    medians = [median_seen([c.offsets[column] for c in cycles]) for column in range(len(marks))]
    cells = "".join(ms(v, width) for v in [*medians, Summary.of([c.latency for c in cycles]).median])
    print(
        f"{'median':>5} {'':>10}{cells} | {ms(Summary.of([c.bare_load for c in cycles]).median, 9)} "
        f"{ms(Summary.of([c.bare_infer for c in cycles]).median, 9)} "
        f"{ms(Summary.of([s.mlserver for s in splits]).median, 9)} | "
        f"{ms(Summary.of([s.control_plane for s in splits]).median, 10)} "
        f"{Summary.of([s.share for s in splits]).median:>5.0%}"
    )
    _print_summary(splits)


def _print_summary(splits: list[ColdSplit]) -> None:
    print(f"{'':<26} {'min':>8} {'median':>8} {'max':>8}")
    for label, values in (
        ("cold-start latency", [s.latency for s in splits]),
        ("MLServer (bare baseline)", [s.mlserver for s in splits]),
        ("control plane", [s.control_plane for s in splits]),
    ):
        summary = Summary.of(values)
        print(f"{label:<26} {ms(summary.min, 8)} {ms(summary.median, 8)} {ms(summary.max, 8)}")
    share = Summary.of([s.share for s in splits])
    print(f"{'control-plane share':<26} {share.min:>8.0%} {share.median:>8.0%} {share.max:>8.0%}")
    verdict = "met" if control_plane_met(splits) else "NOT met"
    print(f"target (median control-plane time < {TARGET_CONTROL_PLANE_SECONDS * 1000:.0f} ms): {verdict}")


# ---- the run ------------------------------------------------------------------------------------
async def _bench(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-autoscaler-", dir=args.work_dir))
    started = time.perf_counter()
    try:
        await _bench_in(args, root)
        print(f"run took {time.perf_counter() - started:.0f} s")
    finally:
        if args.keep:
            print(f"kept {root} (logs: up.log, state/replicas/*/runtime.log, bare-mlserver/mlserver.log)")
        else:
            shutil.rmtree(root, ignore_errors=True)


async def _bench_in(args: argparse.Namespace, root: Path) -> None:
    iris = build_iris_model(root / "iris")
    knobs = _knobs(args)
    print("knobs (environment of `modelplane up`): " + " ".join(f"{k}={v}" for k, v in knobs.items()))
    print(
        f"stack: `modelplane up`, Server {SERVER} at {args.max_replicas} MLServer replicas "
        f"(parallel_workers {replica_parallel_workers()}); bare MLServer alike for the baseline"
    )
    up = BenchUp(root / "state", Ports(), root / "up.log", extra_env=knobs)
    bare = BareMLServer(root, iris, "iris-bare")
    api: Api | None = None
    up.start()
    try:
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:  # the bare MLServer starts while the stack does
            group.create_task(asyncio.to_thread(up.wait_ready, READY_TIMEOUT), name="up-ready")
            group.create_task(bare.start(), name="bare-mlserver-start")
        api = Api(up.api_address, up.admin_token)
        async with Observer(up.nats_url) as seen:
            await api.apply(server_manifest(SERVER, args.max_replicas))
            await seen.wait_for(
                lambda: (
                    True
                    if m.available_replicas(
                        seen.timeline.latest(subjects.KV_STATUS, subjects.status_key("Server", SERVER))
                    )
                    >= args.max_replicas
                    else None
                ),
                READY_TIMEOUT,
                f"{args.max_replicas} replicas of Server {SERVER}",
            )
            await api.apply(
                model_manifest(
                    COLD_MODEL,
                    iris.path,
                    replicas=1,
                    min_replicas=0,
                    max_replicas=1,
                    target_requests=1,
                    scale_down_delay_seconds=args.cold_scale_down_delay,
                )
            )
            print(f"stack ready in {time.perf_counter() - started:.1f} s")
            # A fresh MLServer's first model of a runtime imports it (sklearn): new replicas pay
            # this on their first load, e.g. while scaling up.
            first_load, first_infer = await bare.load_and_answer(orjson.dumps(iris.v2_request(rows=1)))
            print(
                f"bare MLServer, first model load in a fresh process (imports the sklearn runtime): "
                f"load {ms(first_load)} + first infer {ms(first_infer)}, on an idle stack"
            )
            if not args.skip_scale_up:
                if not args.fresh_replicas:
                    await _warm_replicas(args, api, seen, iris)
                await scale_up(args, api, seen, up, iris, first_load)
            if args.cycles > 0:
                await cold_starts(args, api, seen, up, bare)
    except BaseException:
        print(f"--- last lines of the `up` log ({up.log_path}):\n{up.log_tail(40)}", file=sys.stderr)
        raise
    finally:
        if api is not None:
            await api.close()
        await bare.close()
        await asyncio.to_thread(up.stop)


def _positive(kind: type[float] | type[int]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.autoscaler",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--callers", type=_positive(int), default=8, help="concurrent callers (scale-up)")
    parser.add_argument("--target", type=_positive(float), default=2.0, help="targetRequests (scale-up)")
    parser.add_argument(
        "--max-replicas", type=_positive(int), default=3, help="model maxReplicas = Server replicas"
    )
    parser.add_argument("--cycles", type=int, default=5, help="measured cold starts (0: none)")
    parser.add_argument("--warmup-cycles", type=int, default=1, help="cold starts run first, not counted")
    parser.add_argument("--interval", type=_positive(float), default=1.0, help="autoscaler interval, s")
    parser.add_argument("--window", type=_positive(float), default=3.0, help="autoscaler window, s")
    parser.add_argument("--stale-after", type=_positive(float), default=5.0, help="autoscaler stale-after, s")
    parser.add_argument(
        "--load-report-interval", type=_positive(float), default=1.0, help="gateway load reports, s"
    )
    parser.add_argument(
        "--cold-scale-down-delay",
        type=float,
        default=3.0,
        help="scaleDownDelaySeconds of the cold-start model, s",
    )
    parser.add_argument("--skip-scale-up", action="store_true", help="only measure cold starts")
    parser.add_argument(
        "--fresh-replicas",
        action="store_true",
        help="scale up onto replicas that never loaded a model (they import the runtime first)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (logs, state)")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="where temp files go (default: system temp)"
    )
    args = parser.parse_args(argv)
    if args.cycles < 0 or args.warmup_cycles < 0 or args.cold_scale_down_delay < 0:
        parser.error("--cycles, --warmup-cycles and --cold-scale-down-delay must not be negative")

    from modelplane.libs import logs

    logs.configure("bench", "error")
    print(f"command: {' '.join(sys.orig_argv)}")
    print(f"machine: {os.cpu_count()} cores, load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    asyncio.run(_bench(args))


if __name__ == "__main__":
    main()
