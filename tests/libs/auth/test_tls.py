"""libs.tls: server contexts from files serve real clients; bad files name the setting."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import grpc
import pytest

from modelplane.libs.errors import InvalidError
from modelplane.libs.tls import (
    client_ssl_context,
    grpc_channel_credentials,
    grpc_server_credentials,
    server_ssl_context,
    tls_files,
)
from tests.helpers.tls_certs import make_cert


async def test_tls_round_trip_over_asyncio(tmp_path: Path) -> None:
    """A server with server_ssl_context answers a client trusting the test CA."""
    certs = make_cert(tmp_path)
    files = tls_files(certs.cert, certs.key)
    assert files is not None

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ssl_context(files))
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ssl_context(certs.ca))
        writer.write(b"hello\n")
        assert await reader.readline() == b"hello\n"
        writer.close()
        await writer.wait_closed()
        # Without the CA the certificate is not trusted.
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", port, ssl=client_ssl_context())
    finally:
        server.close()
        await server.wait_closed()


def test_grpc_credentials_build_from_files(tmp_path: Path) -> None:
    certs = make_cert(tmp_path)
    files = tls_files(certs.cert, certs.key)
    assert files is not None
    assert isinstance(grpc_server_credentials(files), grpc.ServerCredentials)
    assert isinstance(grpc_channel_credentials(certs.ca), grpc.ChannelCredentials)


def test_bad_files_name_the_setting(tmp_path: Path) -> None:
    """One file without the other, a missing file, or a file that is not PEM: InvalidError."""
    certs = make_cert(tmp_path)
    assert tls_files(None, None) is None
    with pytest.raises(InvalidError) as only_cert:
        tls_files(certs.cert, None, field="api_tls")
    assert only_cert.value.field == "api_tls_key"
    with pytest.raises(InvalidError) as missing:
        tls_files(tmp_path / "nope.crt", certs.key)
    assert missing.value.field == "tls_cert"
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    files = tls_files(junk, certs.key)
    assert files is not None
    with pytest.raises(InvalidError):
        server_ssl_context(files)
    with pytest.raises(InvalidError) as bad_ca:
        client_ssl_context(tmp_path / "absent.pem")
    assert bad_ca.value.field == "ca"
