"""``python -m bench.pipelines``: a 3-step pipeline vs. the client calling the 3 models itself.

Both sides do the same model work: three calls of the ``double`` model on one MLServer replica,
each fed with the previous answer. Direct, the client makes the three V2 REST calls to MLServer
one after another; through the pipeline, it makes one call to the gateway, which hands the
request to the dataflow worker over JetStream; the worker calls the three steps through the
gateway and the answer comes back over JetStream. Same client library (aiohttp, keep-alive), same
machine, measured back to back in one run, several rounds alternating the two.

Printed per concurrency: p50/p99 latency of each side, the added p50 latency per step
((pipeline p50 - direct p50) / 3) and the throughput ratio (pipeline / direct). Target (issue 6):
added p50 per step < 1 ms. CPU per request of the gateway and the worker is printed too: on a
2-core machine they share the cores with MLServer and the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import pstats
import statistics
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.gateway.load import Cell, closed_loop, process_cpu_seconds
from bench.pipelines import floor
from bench.pipelines.stack import DEFAULT_STEPS, PIPELINE, SERVER_MODEL, Stack

BODY = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1.0, 2.0, 3.0, 4.0]}]}


class DirectChain:
    """The client chaining the three calls itself (each answer's OUTPUT0 becomes the next input)."""

    def __init__(self, http: str, steps: int) -> None:
        self._steps = steps
        self._url = f"http://{http}/v2/models/{SERVER_MODEL}/infer"
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60))

    async def infer(self) -> None:
        body: dict[str, Any] = BODY
        for _ in range(self._steps):
            async with self._session.post(
                self._url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
            ) as resp:
                payload = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"direct call: {resp.status} {payload[:300]!r}")
            output = orjson.loads(payload)["outputs"][0]
            body = {"inputs": [{**output, "name": "INPUT0"}]}

    async def close(self) -> None:
        await self._session.close()


class PipelineCall:
    def __init__(self, http: str) -> None:
        self._url = f"http://{http}/v2/models/{PIPELINE}.pipeline/infer"
        self._body = orjson.dumps(BODY)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60))

    async def infer(self) -> None:
        async with self._session.post(
            self._url, data=self._body, headers={"Content-Type": "application/json"}
        ) as resp:
            payload = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"pipeline call: {resp.status} {payload[:300]!r}")

    async def close(self) -> None:
        await self._session.close()


def _ms(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _bench(args: argparse.Namespace) -> None:
    async with Stack(profile_to=args.profile, steps=args.steps, profiled=args.profile_process) as stack:
        direct = DirectChain(stack.direct.http, args.steps)
        through = PipelineCall(stack.gateway.http)
        try:
            for client in (direct, through):
                await closed_loop(client, 4, args.warmup_seconds)
            hop, core = await floor.measure(stack.nats_url)
            print(
                f"floor: JetStream publish -> worker -> reply p50 {hop:.2f} ms; core NATS request/reply p50 "
                f"{core:.2f} ms (a pipeline request crosses NATS this way once)"
            )
            print(
                f"{'conc':>4} {'direct p50':>11} {'p99':>8} {'pipeline p50':>13} {'p99':>8} "
                f"{'added/step p50':>15} {'throughput':>11} {'gw cpu/req':>11} {'df cpu/req':>11}"
            )
            for concurrency in args.concurrency:
                runs: dict[str, list[Cell]] = {"direct": [], "pipeline": []}
                cpu = {"gateway": 0.0, "dataflow": 0.0}
                for _ in range(args.repeats):
                    runs["direct"].append(await closed_loop(direct, concurrency, args.seconds))
                    before = {name: process_cpu_seconds(stack.pid(name)) for name in cpu}
                    runs["pipeline"].append(await closed_loop(through, concurrency, args.seconds))
                    for name in cpu:
                        cpu[name] += process_cpu_seconds(stack.pid(name)) - before[name]
                d = [x for cell in runs["direct"] for x in cell.latencies]
                p = [x for cell in runs["pipeline"] for x in cell.latencies]
                d_tp = statistics.fmean(c.throughput for c in runs["direct"])
                p_tp = statistics.fmean(c.throughput for c in runs["pipeline"])
                added = (_ms(p, 0.5) - _ms(d, 0.5)) / len(stack.steps)
                print(
                    f"{concurrency:>4} {_ms(d, 0.5):>9.2f}ms {_ms(d, 0.99):>6.2f}ms {_ms(p, 0.5):>11.2f}ms "
                    f"{_ms(p, 0.99):>6.2f}ms {added:>+13.2f}ms {p_tp / d_tp:>10.0%} "
                    f"{1000 * cpu['gateway'] / len(p):>9.2f}ms {1000 * cpu['dataflow'] / len(p):>9.2f}ms"
                )
        finally:
            await direct.close()
            await through.close()


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipelines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--warmup-seconds", type=float, default=2.0, help="warm-up seconds per client")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every cell")
    parser.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help="steps of the chain (the target is for 3)"
    )
    parser.add_argument("--concurrency", type=_ints, default=(1, 16), help="comma-separated")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="cProfile one process (--profile-process) into this file (pstats format)",
    )
    parser.add_argument(
        "--profile-process",
        choices=("dataflow", "gateway"),
        default="dataflow",
        help="the process --profile profiles",
    )
    args = parser.parse_args(argv)
    asyncio.run(_bench(args))
    if args.profile is not None:
        stats = pstats.Stats(str(args.profile))
        stats.sort_stats("tottime").print_stats(25)
