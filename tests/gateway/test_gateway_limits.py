"""The gateway's REST server applies its MODELPLANE_GATEWAY_* input bounds (real gateway, real NATS)."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.services.gateway.settings import GatewaySettings
from tests.gateway.conftest import eventually, start_gateway
from tests.libs.http1.test_server import read_eof, read_response


async def test_100k_headers_are_431_while_health_ready_keeps_answering(
    nats_server: EmbeddedNats, http: aiohttp.ClientSession
) -> None:
    """One request with 100,000 headers gets 431; /v2/health/ready on another connection answers 200."""
    app = await start_gateway(nats_server)
    try:

        async def ready() -> bool:
            async with http.get(f"{app.http_url}/v2/health/ready") as resp:
                return resp.status == 200

        await eventually(ready, 10, "gateway readiness")
        reader, writer = await asyncio.open_connection(app.settings.host, app.settings.http_port)
        try:
            writer.write(b"GET /v2/health/ready HTTP/1.1\r\nhost: x\r\n")
            writer.write(b"".join(b"x-%d: v\r\n" % i for i in range(100_000)))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            assert await ready()
            answer = await read_response(reader)
            assert answer.status == 431
            assert await read_eof(reader) == b""
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        assert await ready()
    finally:
        await app.close()


async def test_a_trickled_head_is_408_after_the_header_timeout(nats_server: EmbeddedNats) -> None:
    """MODELPLANE_GATEWAY_HEADER_TIMEOUT_SECONDS reaches the server: a head never finished gets 408."""
    app = await start_gateway(nats_server, header_timeout_seconds=0.3)
    try:
        reader, writer = await asyncio.open_connection(app.settings.host, app.settings.http_port)
        try:
            writer.write(b"GET /v2/health/ready HTTP/1.1\r\nhost: x\r\nx-slow: v")
            answer = await read_response(reader)
            assert answer.status == 408
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    finally:
        await app.close()


def test_every_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each bound of the REST server is read from MODELPLANE_GATEWAY_*, with nginx-like defaults."""
    defaults = GatewaySettings()
    assert (defaults.max_request_line_bytes, defaults.max_headers_bytes, defaults.max_headers) == (
        8192,
        65536,
        100,
    )
    for name, value in {
        "MAX_REQUEST_LINE_BYTES": "4096",
        "MAX_HEADER_BYTES": "1024",
        "MAX_HEADERS_BYTES": "2048",
        "MAX_HEADERS": "10",
        "HEADER_TIMEOUT_SECONDS": "2.5",
        "BODY_TIMEOUT_SECONDS": "3.5",
        "MAX_CONNECTIONS": "50",
    }.items():
        monkeypatch.setenv(f"MODELPLANE_GATEWAY_{name}", value)
    settings = GatewaySettings()
    assert (settings.max_request_line_bytes, settings.max_header_bytes, settings.max_headers_bytes) == (
        4096,
        1024,
        2048,
    )
    assert (settings.max_headers, settings.max_connections) == (10, 50)
    assert (settings.header_timeout_seconds, settings.body_timeout_seconds) == (2.5, 3.5)
