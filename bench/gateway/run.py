"""Gateway benchmark: the same client against the same MLServer replica, direct and via the gateway.

How to run (from the repository root):

    .venv/bin/python -m bench.gateway                          # REST+gRPC, 1/16/64, 3 x 3 s per cell
    .venv/bin/python -m bench.gateway --sizes 1,100 --repeats 5 --seconds 5
    .venv/bin/python -m bench.gateway --profile --repeats 1    # then cProfile the gateway process

It starts nats-server, one MLServer replica serving a real sklearn iris model and the gateway
(``modelplane run gateway``, its own process), all on free ports, and writes the route
``iris -> iris_1`` into KV_ROUTES itself (stack.py). This process is the load generator
(load.py; uvloop): for each request size (rows per request), transport (REST, gRPC) and
concurrency (1 = sequential, 16, 64) it runs a closed-loop cell direct to MLServer and one
through the gateway, back to back, alternating which goes first so machine drift cancels out;
``--repeats`` rounds of all cells. Each client warms up (connections, caches) before any cell.

Printed per cell: p50/p99 latency and throughput, direct and through the gateway. The summary
pools every repeat's latencies per cell (p50/p99), takes the median throughput, and prints the
added p50 latency (gateway - direct) and the gateway's throughput as a share of direct, each the
median over repeats of the back-to-back pair, the CPU time the gateway process spent per
request, and whether the issue's target is met: added p50
<= 1 ms and throughput >= 90 % of direct at every concurrency. On a 2-core machine the gateway
competes with MLServer and the client for the same cores, so the throughput ratio at high
concurrency measures CPU cost as much as proxy latency; the CPU per request column is the
figure that does not depend on contention.

``--gateway-env KEY=VALUE`` changes how the gateway process runs, to measure a suggested change
without editing the gateway: e.g. ``MODELPLANE_GATEWAY_EVENT_LOOP=asyncio`` (the gateway runs on
uvloop by default) or ``OTEL_EXPORTER_OTLP_ENDPOINT=...`` (spans recorded and exported).
``--profile`` then restarts the gateway under cProfile, drives it with ``--profile-concurrency``
workers for ``--profile-seconds`` per transport and prints where its time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):
    # Run as a script: make the repository root importable (``bench`` is not installed).
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

if TYPE_CHECKING:
    from bench.gateway.stack import Stack

TARGET_ADDED_P50_MS = 1.0
TARGET_THROUGHPUT_SHARE = 0.90
TRANSPORTS = ("rest", "grpc")
TARGETS = ("direct", "gateway")
# The gateway setting that picks its event loop (uvloop unless set otherwise).
EVENT_LOOP_ENV = "MODELPLANE_GATEWAY_EVENT_LOOP"


@dataclass
class CellRuns:
    """Every repeat of one (size, transport, concurrency, target) cell."""

    latencies: list[float] = field(default_factory=list)
    throughputs: list[float] = field(default_factory=list)
    # Per repeat, in order: p50 in ms (paired with the other target's same repeat).
    p50s: list[float] = field(default_factory=list)
    requests: int = 0
    gateway_cpu: float = 0.0

    def p(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1e3

    @property
    def throughput(self) -> float:
        return float(np.median(self.throughputs))


def _ints(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(",") if v.strip())
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _transports(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values or any(v not in TRANSPORTS for v in values):
        raise argparse.ArgumentTypeError(f"expected some of {','.join(TRANSPORTS)}, got {text!r}")
    return values


async def _bench(args: argparse.Namespace) -> None:
    from bench.gateway import load
    from bench.gateway.stack import MODEL, SERVER_MODEL_NAME, Stack

    async with Stack(args.work_dir, gateway_env=dict(args.gateway_env)) as stack:
        assert stack.iris is not None
        extra = " ".join(f"{k}={v}" for k, v in args.gateway_env)
        print(
            f"gateway process: event loop {dict(args.gateway_env).get(EVENT_LOOP_ENV, 'uvloop')}; env {extra or '-'}"
        )
        print(
            f"mlserver pid {stack.mlserver_pid} (REST {stack.direct.http}, gRPC {stack.direct.grpc}); "
            f"gateway pid {stack.gateway_pid} (REST {stack.gateway.http}, gRPC {stack.gateway.grpc})"
        )
        runs: dict[tuple[int, str, int, str], CellRuns] = {}
        for size in args.sizes:
            data = load.rows_of(stack.iris.X, size)

            def client(
                transport: str, target: str, data: np.ndarray = data
            ) -> load.RestClient | load.GrpcClient:
                ends = stack.direct if target == "direct" else stack.gateway
                model = SERVER_MODEL_NAME if target == "direct" else MODEL
                if transport == "rest":
                    return load.RestClient(ends.http, model, data)
                return load.GrpcClient(ends.grpc, model, data)

            clients = {(t, g): client(t, g) for t in args.transports for g in TARGETS}
            try:
                for transport in args.transports:
                    direct = await clients[transport, "direct"].predictions()
                    via = await clients[transport, "gateway"].predictions()
                    if direct != via or len(direct) != size:
                        raise RuntimeError(
                            f"{transport}: gateway answered {via[:5]}..., direct {direct[:5]}..."
                        )
                for c in clients.values():
                    await load.closed_loop(c, max(args.concurrency), args.warmup_seconds)
                print(
                    f"== {size} row(s) per request: warmed up, answers identical direct and via the gateway =="
                )
                flip = 0
                for repeat in range(1, args.repeats + 1):
                    for transport in args.transports:
                        for concurrency in args.concurrency:
                            order = TARGETS if flip % 2 == 0 else TARGETS[::-1]
                            flip += 1
                            line: dict[str, load.Cell] = {}
                            for target in order:
                                pid = stack.gateway_pid if target == "gateway" else None
                                cell = await load.closed_loop(
                                    clients[transport, target], concurrency, args.seconds, pid
                                )
                                line[target] = cell
                                slot = runs.setdefault((size, transport, concurrency, target), CellRuns())
                                slot.latencies.extend(cell.latencies)
                                slot.throughputs.append(cell.throughput)
                                slot.p50s.append(_ms(cell.latencies, 50))
                                slot.requests += len(cell.latencies)
                                slot.gateway_cpu += cell.gateway_cpu or 0.0
                            d, g = line["direct"], line["gateway"]
                            print(
                                f"repeat {repeat} {transport:<4} c={concurrency:<3} "
                                f"direct p50 {_ms(d.latencies, 50):6.2f} ms {d.throughput:7.1f}/s   "
                                f"gateway p50 {_ms(g.latencies, 50):6.2f} ms {g.throughput:7.1f}/s   "
                                f"({'direct first' if order[0] == 'direct' else 'gateway first'})"
                            )
            finally:
                for c in clients.values():
                    await c.close()
        _summary(args, runs)
        if args.profile:
            await _profile(args, stack)


def _ms(latencies: tuple[float, ...], q: float) -> float:
    return float(np.percentile(latencies, q)) * 1e3


def _summary(args: argparse.Namespace, runs: dict[tuple[int, str, int, str], CellRuns]) -> None:
    met_everywhere = True
    for size in args.sizes:
        for transport in args.transports:
            print(
                f"== {transport.upper()}, {size} row(s) per request, {args.repeats} x {args.seconds:g} s "
                "per cell (p50/p99 over all repeats, median req/s; added p50 and thr % are medians of the "
                "back-to-back pairs) =="
            )
            print(
                f"{'conc':>4} | {'direct p50':>10} {'p99':>7} {'req/s':>7} | {'gateway p50':>11} {'p99':>7} "
                f"{'req/s':>7} | {'added p50':>9} {'thr %':>6} {'gw CPU/req':>10} | target"
            )
            for concurrency in args.concurrency:
                d = runs[size, transport, concurrency, "direct"]
                g = runs[size, transport, concurrency, "gateway"]
                # Ratios of the back-to-back pairs (median over repeats): drift between repeats
                # cancels out, which comparing pooled figures would not do.
                added = float(np.median([gp - dp for gp, dp in zip(g.p50s, d.p50s, strict=True)]))
                share = float(
                    np.median([gt / dt for gt, dt in zip(g.throughputs, d.throughputs, strict=True)])
                )
                cpu_us = g.gateway_cpu / g.requests * 1e6
                met = added <= TARGET_ADDED_P50_MS and share >= TARGET_THROUGHPUT_SHARE
                met_everywhere &= met
                print(
                    f"{concurrency:>4} | {d.p(50):7.2f} ms {d.p(99):7.2f} {d.throughput:7.1f} | "
                    f"{g.p(50):8.2f} ms {g.p(99):7.2f} {g.throughput:7.1f} | "
                    f"{added:+6.2f} ms {share * 100:5.1f}% {cpu_us:7.0f} us | {'met' if met else 'NOT met'}"
                )
    print(
        f"target (added p50 <= {TARGET_ADDED_P50_MS:g} ms and throughput >= {TARGET_THROUGHPUT_SHARE:.0%} "
        f"of direct in every cell): {'met' if met_everywhere else 'NOT met'}"
    )


async def _profile(args: argparse.Namespace, stack: Stack) -> None:
    from bench.gateway import load
    from bench.gateway.stack import MODEL

    assert stack.iris is not None
    out_dir = args.profile_dir or Path(tempfile.mkdtemp(prefix="bench-gateway-profile-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load.rows_of(stack.iris.X, args.sizes[0])
    for transport in args.transports:
        path = out_dir / f"gateway-{transport}.prof"
        await stack.start_gateway(profile_to=path)
        client: load.RestClient | load.GrpcClient = (
            load.RestClient(stack.gateway.http, MODEL, data)
            if transport == "rest"
            else load.GrpcClient(stack.gateway.grpc, MODEL, data)
        )
        try:
            await load.closed_loop(client, args.profile_concurrency, args.warmup_seconds)
            cell = await load.closed_loop(client, args.profile_concurrency, args.profile_seconds)
        finally:
            await client.close()
        stack.stop_gateway()
        print(
            f"== cProfile of the gateway, {transport.upper()}, c={args.profile_concurrency}, "
            f"{len(cell.latencies)} measured requests (+ warm-up and start-up), {path} =="
        )
        stats = pstats.Stats(str(path))
        stats.sort_stats("tottime").print_stats(args.profile_top)
        stats.sort_stats("cumulative").print_stats("gateway|aiohttp|grpc|opentelemetry", args.profile_top)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--warmup-seconds", type=float, default=2.0, help="warm-up seconds per client")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every cell")
    parser.add_argument(
        "--concurrency", type=_ints, default=(1, 16, 64), help="concurrent requests, comma-separated"
    )
    parser.add_argument("--sizes", type=_ints, default=(1,), help="rows per request, comma-separated")
    parser.add_argument("--transports", type=_transports, default=TRANSPORTS, help="rest,grpc")
    parser.add_argument("--profile", action="store_true", help="then cProfile the gateway per transport")
    parser.add_argument("--profile-seconds", type=float, default=10.0, help="profiled seconds per transport")
    parser.add_argument("--profile-concurrency", type=int, default=16, help="workers while profiling")
    parser.add_argument("--profile-top", type=int, default=25, help="functions printed per profile view")
    parser.add_argument(
        "--profile-dir", type=Path, default=None, help="where .prof files go (default: new temp dir)"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="where temp files go (default: system temp)"
    )
    parser.add_argument(
        "--gateway-env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the gateway process (repeatable), e.g. OTEL_TRACES_SAMPLER=always_off",
    )
    parser.add_argument(
        "--no-uvloop", action="store_true", help="run the load generator on asyncio's own loop"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup_seconds < 0 or args.repeats <= 0:
        parser.error("--seconds and --repeats must be positive, --warmup-seconds not negative")

    from modelplane.libs import logs

    logs.configure("bench", "error")
    print(f"command: {' '.join(sys.orig_argv)}")
    print(f"machine: {os.cpu_count()} cores, load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if not args.no_uvloop:
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_bench(args))


if __name__ == "__main__":
    main()
