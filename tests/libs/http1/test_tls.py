"""The HTTP/1.1 server over TLS (``HttpServer(ssl=...)``), with a certificate the test makes
(``cryptography``, tests/helpers/tls_certs.py) and aiohttp trusting it."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from modelplane.libs.http1.messages import HttpResponse, RequestHead, Response
from modelplane.libs.http1.server import HttpLimits, HttpServer
from modelplane.libs.tls import client_ssl_context, server_ssl_context, tls_files
from tests.helpers.tls_certs import CertFiles, make_cert
from tests.libs.http1.test_server import DEADLINE, HOST, echo, raw_connection, read_eof


@pytest.fixture
def cert(tmp_path: Path) -> CertFiles:
    return make_cert(tmp_path / "tls")


def _refuse_denied(head: RequestHead) -> Response | None:
    return HttpResponse(403, b"denied") if head.raw_path == "/denied" else None


@asynccontextmanager
async def tls_server(cert: CertFiles, **limits: float) -> AsyncIterator[HttpServer]:
    files = tls_files(cert.cert, cert.key)
    assert files is not None
    server = HttpServer(
        echo,
        HttpLimits(max_body_bytes=1 << 20, **limits),  # type: ignore[arg-type]
        ssl=server_ssl_context(files),
        admit=_refuse_denied,
    )
    await server.start(HOST, 0)
    try:
        yield server
    finally:
        await server.stop(grace_seconds=1.0)


async def test_requests_over_tls_with_a_client_trusting_the_certificate(cert: CertFiles) -> None:
    """aiohttp with the test's CA: GET and POST answered over https, on one kept-alive connection."""
    async with (
        tls_server(cert) as server,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=client_ssl_context(cert.ca), limit=1)
        ) as http,
    ):
        base = f"https://{HOST}:{server.port}"
        async with http.get(f"{base}/hello?x=1") as response:
            assert response.status == 200
            answer = json.loads(await response.read())
        assert (answer["path"], answer["query"]) == ("/hello", "x=1")
        async with http.post(f"{base}/post", data=b"over tls") as response:
            assert json.loads(await response.read())["body"] == "over tls"
        assert server.connections == 1


async def test_refusal_from_the_head_over_tls(cert: CertFiles) -> None:
    """The admission hook answers over TLS too (and the connection closes after the refusal)."""
    async with (
        tls_server(cert) as server,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl_context(cert.ca))) as http,
        http.post(f"https://{HOST}:{server.port}/denied", data=b"x" * 1024) as response,
    ):
        assert response.status == 403
        assert await response.read() == b"denied"


async def test_untrusted_and_plaintext_clients_get_no_answer(cert: CertFiles) -> None:
    """Without the CA the certificate is refused; plain http gets no HTTP answer."""
    async with tls_server(cert) as server:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with http.get(f"https://{HOST}:{server.port}/", ssl=ssl.create_default_context()):
                    pass
        async with raw_connection(server.port) as (reader, writer):
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            async with asyncio.timeout(DEADLINE):
                assert not (await reader.read()).startswith(b"HTTP/")


async def test_a_client_that_never_starts_the_handshake_is_closed_by_the_header_timeout(
    cert: CertFiles,
) -> None:
    """The handshake is bounded like a head (not asyncio's default minute): a silent TCP
    connection to the TLS port is closed after the header timeout."""
    async with (
        tls_server(cert, header_timeout_seconds=0.5) as server,
        raw_connection(server.port) as (reader, _),
    ):
        assert await read_eof(reader) == b""
