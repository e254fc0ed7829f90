"""The floor under any JetStream-based request path on this machine, measured in the same run.

A pipeline request crosses NATS twice (the request into the stream and on to a worker, the
answer back), whatever the dataflow does. This measures exactly that with nothing else: a
responder process on uvloop takes requests from a push consumer in a queue group (as the
workers do) and answers each on the reply subject it names (as they do); the caller publishes
with a message id into a stream and waits for the answer. Core NATS request/reply is measured
too, for scale.

Run as ``python -m bench.pipelines.floor <nats url> responder`` (the benchmark starts it).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

import nats
import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

STREAM = "BENCH_FLOOR"
SUBJECT = "bench.floor.in"
CORE = "bench.floor.core"
GROUP = "floor"
REPLY = "Reply-To"


async def _respond(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()

    async def on_request(msg: Msg) -> None:
        await nc.publish((msg.headers or {})[REPLY], b"ok")
        await msg.ack()

    async def on_core(msg: Msg) -> None:
        await nc.publish(msg.reply, b"ok")

    config = ConsumerConfig(durable_name=GROUP, deliver_group=GROUP, ack_policy=AckPolicy.EXPLICIT)
    await js.subscribe(
        f"{SUBJECT}.*",
        queue=GROUP,
        durable=GROUP,
        stream=STREAM,
        config=config,
        manual_ack=True,
        cb=on_request,
    )
    await nc.subscribe(CORE, queue=GROUP, cb=on_core)
    await asyncio.Event().wait()


async def measure(url: str, count: int = 2000, warmup: int = 300) -> tuple[float, float]:
    """(JetStream hop p50, core request/reply p50) in milliseconds."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=[f"{SUBJECT}.*"], storage=StorageType.FILE))
    responder = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.pipelines.floor", url, "responder", start_new_session=True
    )
    try:
        inbox = nc.new_inbox()
        waiting: dict[str, asyncio.Future[Msg]] = {}

        async def on_answer(msg: Msg) -> None:
            future = waiting.pop(msg.subject.rsplit(".", 1)[-1], None)
            if future is not None:
                future.set_result(msg)

        await nc.subscribe(f"{inbox}.*", cb=on_answer)
        deadline = time.monotonic() + 30
        while True:  # until the responder is up
            try:
                await nc.request(CORE, b"", timeout=1)
                break
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        hop: list[float] = []
        for _ in range(count):
            rid = os.urandom(8).hex()
            future: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()
            waiting[rid] = future
            started = time.perf_counter()
            await js.publish(
                f"{SUBJECT}.{rid}", b"x" * 200, headers={REPLY: f"{inbox}.{rid}", "Nats-Msg-Id": rid}
            )
            await asyncio.wait_for(future, 10)
            hop.append(time.perf_counter() - started)
        core: list[float] = []
        for _ in range(count):
            started = time.perf_counter()
            await nc.request(CORE, b"x" * 200, timeout=10)
            core.append(time.perf_counter() - started)
        return 1000 * statistics.median(hop[warmup:]), 1000 * statistics.median(core[warmup:])
    finally:
        responder.kill()
        await responder.wait()
        await nc.close()


def main() -> None:
    import uvloop  # installed with MLServer; the workers run on it too

    uvloop.run(_respond(sys.argv[1]))


if __name__ == "__main__":
    main()
