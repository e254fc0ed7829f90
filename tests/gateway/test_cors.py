"""Browser cross-origin requests: refused (403) unless MODELPLANE_GATEWAY_CORS_ORIGINS lists the
origin; listed origins get their preflights answered and CORS headers on answers."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from nats.js import JetStreamContext

from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.services.gateway.app import App
from modelplane.services.gateway.settings import GatewaySettings
from tests.gateway.conftest import MLServerReplica, start_gateway

EVIL = "http://evil.example"
FRIEND = "http://localhost:3000"


async def test_a_page_elsewhere_cannot_call_the_gateway(gateway: App, mlserver: MLServerReplica) -> None:
    """The text/plain POST a page may send without a preflight is 403, as is any other route;
    no CORS header lets the page read anything."""
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{gateway.http_url}/v2/models/iris/infer",
            data=json.dumps(mlserver.iris.v2_request(1)),
            headers={"Origin": EVIL, "Content-Type": "text/plain"},
        ) as resp:
            assert resp.status == 403
            assert "access-control-allow-origin" not in resp.headers
            assert EVIL in (await resp.json())["error"]
        async with http.get(f"{gateway.http_url}/v2/models", headers={"Origin": EVIL}) as resp:
            assert resp.status == 403
        async with http.options(
            f"{gateway.http_url}/v2/models/iris/infer",
            headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
        ) as resp:
            assert resp.status == 403
            assert "access-control-allow-origin" not in resp.headers


async def test_no_origin_or_the_gateways_own_is_served(gateway: App, mlserver: MLServerReplica) -> None:
    """Non-browser clients send no Origin; a page served from the gateway's own origin may call it."""
    own = gateway.http_url
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Origin": own}):
            async with http.post(
                f"{gateway.http_url}/v2/models/iris/infer", json=mlserver.iris.v2_request(1), headers=headers
            ) as resp:
                assert resp.status == 200, headers
                assert "access-control-allow-origin" not in resp.headers


async def test_listed_origins_get_preflights_and_cors_headers(
    js: JetStreamContext, nats_server: EmbeddedNats, gateway: App, mlserver: MLServerReplica
) -> None:
    """With the origin listed, its preflight is 204 with the allowed method and headers, its
    answers carry Access-Control-Allow-Origin; other origins are still 403."""
    app = await start_gateway(nats_server, cors_origins=[FRIEND])
    try:
        async with aiohttp.ClientSession() as http:
            async with http.options(
                f"{app.http_url}/v2/models/iris/infer",
                headers={
                    "Origin": FRIEND,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization, content-type",
                },
            ) as resp:
                assert resp.status == 204
                assert resp.headers["access-control-allow-origin"] == FRIEND
                assert "POST" in resp.headers["access-control-allow-methods"]
                assert resp.headers["access-control-allow-headers"] == "authorization, content-type"
            async with http.get(f"{app.http_url}/v2/models", headers={"Origin": FRIEND}) as resp:
                assert resp.status == 200
                assert resp.headers["access-control-allow-origin"] == FRIEND
                assert resp.headers["vary"] == "origin"
            async with http.get(f"{app.http_url}/v2/models", headers={"Origin": EVIL}) as resp:
                assert resp.status == 403
    finally:
        await app.close()


def test_origins_come_from_the_environment_as_a_list_or_comma_separated() -> None:
    """MODELPLANE_GATEWAY_CORS_ORIGINS takes "a,b" as well as a JSON list."""
    assert GatewaySettings(cors_origins="http://a:1, http://b").cors_origins == ["http://a:1", "http://b"]
    assert GatewaySettings(cors_origins='["http://a"]').cors_origins == ["http://a"]


async def test_a_foreign_origin_is_refused_before_its_body_is_read(gateway: App) -> None:
    """From the head alone: the 403 comes instead of the invitation to send a 50 MiB body."""
    host, port = gateway.http_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"POST /v2/models/iris/infer HTTP/1.1\r\nHost: {host}:{port}\r\nOrigin: {EVIL}\r\n"
            "Content-Type: text/plain\r\nContent-Length: 52428800\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 403"), status_line
