"""The load generator: one client per (transport, target), N concurrent workers for a fixed time.

Clients are the same code whatever they point at, so direct and gateway cells differ only in the
address. Each is built once and kept for the whole run, as a real client keeps its connections:
- REST: one aiohttp ``ClientSession`` with an unbounded keep-alive pool (up to one connection
  per worker), POSTing a pre-serialized V2 JSON body to ``/v2/models/<model>/infer``;
- gRPC: one ``grpc.aio`` channel (HTTP/2, calls multiplexed) and a pre-built
  ``ModelInferRequest`` with FP64 contents.

A cell runs ``concurrency`` workers, each sending its next request as soon as the previous one
is answered (closed loop), until ``seconds`` have passed; it records every latency. Any answer
other than success fails the run: a benchmark of error responses would measure nothing.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp
import grpc
import numpy as np
import orjson

from modelplane.proto import open_inference_pb2 as oip
from modelplane.proto import open_inference_pb2_grpc as oip_grpc

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Client(Protocol):
    async def infer(self) -> None:
        """Send one inference request and wait for its successful answer."""

    async def close(self) -> None: ...


def rows_of(x: np.ndarray, rows: int) -> np.ndarray:
    """``rows`` rows of the iris features (tiled when more than the data set holds)."""
    reps = -(-rows // len(x))
    return np.asarray(np.tile(x, (reps, 1))[:rows], dtype=np.float64)


class RestClient:
    """V2 REST infer over one keep-alive aiohttp session."""

    def __init__(self, http: str, model: str, data: np.ndarray) -> None:
        self._url = f"http://{http}/v2/models/{model}/infer"
        self._body = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "predict",
                        "shape": list(data.shape),
                        "datatype": "FP64",
                        "data": data.flatten().tolist(),
                    }
                ]
            }
        )
        self._headers = {"Content-Type": "application/json"}
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(connector=connector)

    async def infer(self) -> None:
        async with self._session.post(self._url, data=self._body, headers=self._headers) as resp:
            payload = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"POST {self._url}: {resp.status} {payload[:300]!r}")

    async def predictions(self) -> list[int]:
        async with self._session.post(self._url, data=self._body, headers=self._headers) as resp:
            body = orjson.loads(await resp.read())
        return [int(v) for v in body["outputs"][0]["data"]]

    async def close(self) -> None:
        await self._session.close()


class GrpcClient:
    """V2 gRPC ModelInfer over one grpc.aio channel."""

    def __init__(self, target: str, model: str, data: np.ndarray) -> None:
        self._channel = grpc.aio.insecure_channel(
            target,
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        self._stub = oip_grpc.GRPCInferenceServiceStub(self._channel)
        self._request = oip.ModelInferRequest(
            model_name=model,
            inputs=[
                oip.ModelInferRequest.InferInputTensor(
                    name="predict",
                    datatype="FP64",
                    shape=list(data.shape),
                    contents=oip.InferTensorContents(fp64_contents=data.flatten().tolist()),
                )
            ],
        )

    async def infer(self) -> None:
        await self._stub.ModelInfer(self._request, timeout=60)

    async def predictions(self) -> list[int]:
        response = await self._stub.ModelInfer(self._request, timeout=60)
        return [int(v) for v in response.outputs[0].contents.int64_contents]

    async def close(self) -> None:
        await self._channel.close()


@dataclass(frozen=True, slots=True)
class Cell:
    """What one closed-loop run measured."""

    latencies: tuple[float, ...]
    seconds: float
    # CPU seconds the gateway process used during the cell (None for direct cells).
    gateway_cpu: float | None = None

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (Linux /proc; clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime field 14, stime field 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def closed_loop(
    client: Client, concurrency: int, seconds: float, gateway_pid: int | None = None
) -> Cell:
    """``concurrency`` workers sending back-to-back requests for ``seconds``."""
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds
    cpu_before = process_cpu_seconds(gateway_pid) if gateway_pid is not None else None

    async def worker() -> None:
        perf = time.perf_counter
        while True:
            sent = perf()
            if sent >= deadline:
                return
            await client.infer()
            latencies.append(perf() - sent)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    elapsed = time.perf_counter() - started
    cpu = None
    if gateway_pid is not None and cpu_before is not None:
        cpu = process_cpu_seconds(gateway_pid) - cpu_before
    return Cell(latencies=tuple(latencies), seconds=elapsed, gateway_cpu=cpu)
