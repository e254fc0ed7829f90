"""The load generator of the scale-up measurement: N callers, each sending its next request as
soon as the previous one is answered (closed loop), until told to stop. The gateway counts each
caller's request in flight, so the autoscaler sees a concurrency of about N.

Failures are counted, not raised: a request failing while replicas come and go is part of what
the run shows (there should be none).
"""

from __future__ import annotations

import asyncio

import aiohttp

from bench.gateway.load import Client


class Callers:
    def __init__(self, client: Client, count: int) -> None:
        self._client = client
        self._count = count
        self.answered = 0
        self.failed = 0
        self.last_error = ""

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            for index in range(self._count):
                group.create_task(self._caller(stop), name=f"caller-{index}")

    async def _caller(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._client.infer()
                self.answered += 1
            except (aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
                self.failed += 1
                self.last_error = str(exc) or repr(exc)
