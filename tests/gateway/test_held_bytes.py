"""The bytes held for requests waiting on a model with no ready replica are bounded, per model
and in total: past the bound a request is 503 with Retry-After before its body is read.

The acceptance scenario runs the gateway as its own process (``modelplane run gateway``) and
measures its memory from /proc: 64 clients each send a 50 MiB body for two models at zero
replicas at once. The clients send ``Expect: 100-continue`` (as curl does for large bodies), so
a body is sent only when the gateway invites it: the refused ones never send theirs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
from nats.js import JetStreamContext

from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.routes import Route, RouteVersion
from modelplane.proto import open_inference_pb2 as oip
from modelplane.proto import open_inference_pb2_grpc as oip_grpc
from modelplane.services.gateway.held_bytes import HeldBytes
from tests.gateway.conftest import eventually, put_route, start_gateway
from tests.helpers.processes import stop_process_group

MIB = 1024 * 1024
BODY_MIB = 50
CLIENTS = 64
PER_MODEL = 120 * MIB
TOTAL = 160 * MIB
MODELS = ("colda", "coldb")
_PREFIX = b'{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["'
_SUFFIX = b'"]}]}'
_FILLER = b"a" * MIB


@dataclass(frozen=True)
class GatewayProcess:
    proc: subprocess.Popen[bytes]
    http: str
    log: Path

    def memory_kib(self, field: str) -> int:
        """VmRSS (now) or VmHWM (peak) of the gateway process, in KiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
        assert found is not None, status
        return int(found.group(1))


@contextlib.contextmanager
def run_gateway(
    nats_url: str, log: Path, log_level: str = "warning", **settings: str
) -> Iterator[GatewayProcess]:
    """``modelplane run gateway`` as its own process, with ``MODELPLANE_GATEWAY_<KEY>`` settings."""
    http_port = free_port()
    env = {
        **os.environ,
        "MODELPLANE_NATS_URL": nats_url,
        "MODELPLANE_LOG_LEVEL": log_level,
        "MODELPLANE_GATEWAY_HOST": "127.0.0.1",
        "MODELPLANE_GATEWAY_HTTP_PORT": str(http_port),
        "MODELPLANE_GATEWAY_GRPC_PORT": str(free_port()),
        **{f"MODELPLANE_GATEWAY_{key.upper()}": value for key, value in settings.items()},
    }
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelplane", "run", "gateway"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        yield GatewayProcess(proc, f"127.0.0.1:{http_port}", log)
    finally:
        stop_process_group(proc, timeout=20)


@pytest.fixture
def gateway_process(nats_server: EmbeddedNats, tmp_path: Path) -> Iterator[GatewayProcess]:
    with run_gateway(
        nats_server.url,
        tmp_path / "gateway.log",
        hold_seconds="120",
        max_held_bytes_per_model=str(PER_MODEL),
        max_held_bytes=str(TOTAL),
    ) as gateway:
        yield gateway


async def _send(http: str, model: str, admitted: asyncio.Queue[str]) -> tuple[int, str | None]:
    """One client: a 50 MiB infer body sent only when invited (100 Continue).

    Returns (status, Retry-After) of a refusal, or (100, None) once the whole body was sent
    (the request is then held; its answer is not awaited)."""
    host, port = http.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        length = len(_PREFIX) + BODY_MIB * MIB + len(_SUFFIX)
        writer.write(
            (
                f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: {http}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
                "Expect: 100-continue\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        if status != 100:
            return status, headers.get("retry-after")
        writer.write(_PREFIX)
        for _ in range(BODY_MIB):
            writer.write(_FILLER)
            await writer.drain()
        writer.write(_SUFFIX)
        await writer.drain()
        await admitted.put(model)
        # Held: keep the connection open until the test ends (the gateway holds the request).
        await reader.read()
        return 100, None
    finally:
        writer.close()


async def test_held_bodies_are_bounded_and_refused_unread(
    gateway_process: GatewayProcess, js: JetStreamContext
) -> None:
    """64 x 50 MiB for models at zero replicas: three are held (two fit one model's 120 MiB, the
    third fills the 160 MiB total), the other 61 get 503 with Retry-After without sending their
    bodies, and the gateway's peak RSS grows by less than twice the total bound plus a margin
    (while a body is read, its pieces and then their join are in memory)."""
    for model in MODELS:
        await put_route(js, Route(model=model, versions=(RouteVersion(1, f"{model}-1", ()),)))
    async with aiohttp.ClientSession() as session:

        async def known() -> bool:
            if gateway_process.proc.poll() is not None:
                pytest.fail(f"gateway exited: {gateway_process.log.read_text()}")
            try:
                for model in MODELS:
                    async with session.get(f"http://{gateway_process.http}/v2/models/{model}/ready") as resp:
                        if resp.status != 503:  # known, no ready replica
                            return False
            except aiohttp.ClientConnectionError:
                return False
            return True

        await eventually(known, 30, "the gateway to know the models")
        baseline = gateway_process.memory_kib("VmRSS")
        admitted: asyncio.Queue[str] = asyncio.Queue()
        clients = [
            asyncio.create_task(_send(gateway_process.http, MODELS[i % 2], admitted), name=f"client-{i}")
            for i in range(CLIENTS)
        ]
        try:
            refusals: list[tuple[int, str | None]] = []
            pending = set(clients)
            while len(refusals) + admitted.qsize() < CLIENTS:
                done, pending = await asyncio.wait(pending, timeout=1, return_when=asyncio.FIRST_COMPLETED)
                refusals.extend(task.result() for task in done)
                if gateway_process.proc.poll() is not None:
                    pytest.fail(f"gateway exited: {gateway_process.log.read_text()}")

            async def all_held() -> bool:
                async with session.get(f"http://{gateway_process.http}/metrics") as resp:
                    text = await resp.text()
                held = re.findall(
                    r'^modelplane_gateway_held_requests\{model="cold[ab]"\} (\d+)', text, re.MULTILINE
                )
                reserved = re.findall(
                    r'^modelplane_gateway_held_bytes\{model="cold[ab]"\} (\S+)', text, re.MULTILINE
                )
                # Every admitted body is counted, and never more than the total bound.
                held_bytes = sum(float(n) for n in reserved)
                return sum(int(float(n)) for n in held) == admitted.qsize() and 0 < held_bytes <= TOTAL

            await eventually(all_held, 60, "the admitted requests to be held")
            held_rss = gateway_process.memory_kib("VmRSS")
            peak = gateway_process.memory_kib("VmHWM")
        finally:
            for task in clients:
                task.cancel()
            await asyncio.gather(*clients, return_exceptions=True)
    assert admitted.qsize() == 3
    assert len(refusals) == CLIENTS - 3
    assert {status for status, _ in refusals} == {503}
    assert all(retry_after is not None and int(retry_after) >= 1 for _, retry_after in refusals)
    held_mib, peak_mib = (held_rss - baseline) / 1024, (peak - baseline) / 1024
    assert held_mib < TOTAL / MIB + 64, f"gateway RSS grew by {held_mib:.0f} MiB while holding"
    assert peak_mib < 2 * TOTAL / MIB + 64, f"gateway peak RSS grew by {peak_mib:.0f} MiB"


def test_reservations_are_bounded_per_model_and_in_total() -> None:
    """The budget itself: per-model and total bounds, released bytes come back, release twice is harmless."""
    budget = HeldBytes(per_model=100, total=150)
    first = budget.reserve("a", 60)
    with pytest.raises(Exception, match="60 of 100 bytes"):
        budget.reserve("a", 50)
    second = budget.reserve("b", 80)
    with pytest.raises(Exception, match="140 of the gateway's 150 bytes"):
        budget.reserve("c", 20)
    first.release()
    first.release()
    assert budget.held == 80
    assert budget.held_for("a") == 0
    with budget.reserve("c", 70):
        assert budget.held == 150
    second.release()
    assert budget.held == 0


async def test_grpc_and_openai_requests_reserve_when_they_would_be_held(
    js: JetStreamContext, nats_server: EmbeddedNats
) -> None:
    """Messages whose model is known only once read (gRPC, OpenAI's body ``model``) reserve their
    size as they are about to be held: past the bound, UNAVAILABLE / 503 with Retry-After at
    once instead of waiting (the hold here would outlast the clients' deadline)."""
    await put_route(js, Route(model="cold", versions=(RouteVersion(1, "cold-1", ()),)))
    app = await start_gateway(nats_server, hold_seconds=600, max_held_bytes_per_model=1000)
    try:

        async def known() -> bool:
            return app.routes.get("cold") is not None

        await eventually(known, 10, "the route")
        request = oip.ModelInferRequest(model_name="cold")
        tensor = request.inputs.add(name="x", datatype="BYTES", shape=[1])
        tensor.contents.bytes_contents.append(b"a" * 2000)
        async with grpc.aio.insecure_channel(app.grpc_target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await oip_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "1000 bytes" in (raised.value.details() or "")
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.post(f"{app.http_url}/v1/completions", json={"model": "cold", "prompt": "a" * 2000}) as resp,
        ):
            assert resp.status == 503
            assert int(resp.headers["retry-after"]) >= 1
        assert app.held_bytes.held == 0
    finally:
        await app.close()


async def test_a_client_gone_mid_body_gives_its_reservation_back(
    js: JetStreamContext, nats_server: EmbeddedNats
) -> None:
    """The bytes reserved from a REST request's head (the HTTP server's admission hook) come back
    when its client leaves before the body is complete: the request never reaches a handler."""
    await put_route(js, Route(model="cold", versions=(RouteVersion(1, "cold-1", ()),)))
    app = await start_gateway(nats_server, hold_seconds=600)
    try:

        async def known() -> bool:
            return app.routes.get("cold") is not None

        await eventually(known, 10, "the route")
        host, port = app.http_url.removeprefix("http://").rsplit(":", 1)
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /v2/models/cold/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        await writer.drain()

        async def reserved() -> bool:
            return app.held_bytes.held_for("cold") == 1000

        await eventually(reserved, 10, "the head's reservation")
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

        async def given_back() -> bool:
            return app.held_bytes.held == 0

        await eventually(given_back, 10, "the reservation to come back")
    finally:
        await app.close()
