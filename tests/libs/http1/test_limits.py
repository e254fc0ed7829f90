"""The HTTP/1.1 server's bounds on input: head sizes, read deadlines and the connection cap.

Every test here talks to a real server over real sockets and fails against a server without
the bound it names (each was checked with the bound removed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import httptools
import pytest

from modelplane.libs.http1.limits import HttpLimits
from modelplane.libs.http1.server import HttpServer
from tests.libs.http1.test_server import (
    DEADLINE,
    HOST,
    echo,
    raw_connection,
    read_eof,
    read_response,
    wait_until,
)

# A complete request head up to the blank line (added by the tests).
_GET = b"GET /v2/health/ready HTTP/1.1\r\nhost: x\r\n"


@asynccontextmanager
async def limited(**overrides: float) -> AsyncIterator[HttpServer]:
    limits = HttpLimits(max_body_bytes=1 << 20, **overrides)  # type: ignore[arg-type]
    server = HttpServer(echo, limits)
    await server.start(HOST, 0)
    try:
        yield server
    finally:
        await server.stop(grace_seconds=1.0)


async def _status(port: int, head: bytes) -> int:
    """Send one request head and return the answer's status."""
    async with raw_connection(port) as (reader, writer):
        writer.write(head)
        return (await read_response(reader)).status


async def _ready(session: aiohttp.ClientSession, port: int) -> int:
    async with session.get(f"http://{HOST}:{port}/v2/health/ready") as response:
        return response.status


def _header(name: bytes, size: int) -> bytes:
    """A header line whose name and value together are ``size`` bytes."""
    return name + b": " + b"v" * (size - len(name)) + b"\r\n"


async def test_100k_headers_are_431_while_other_connections_are_served() -> None:
    """One request with 100,000 headers is answered 431 and closed; another client is served meanwhile."""
    async with limited() as server, aiohttp.ClientSession() as session:
        port = server.port
        async with raw_connection(port) as (reader, writer):
            head = _GET + b"".join(b"x-%d: v\r\n" % i for i in range(100_000))
            writer.write(head)  # no blank line yet: the head is still arriving
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            assert await _ready(session, port) == 200
            with contextlib.suppress(ConnectionError):
                writer.write(b"\r\n")
            answer = await read_response(reader)
            assert answer.status == 431
            assert answer.headers["connection"] == "close"
            assert await read_eof(reader) == b""
        assert await _ready(session, port) == 200


async def test_header_count_limit() -> None:
    """100 headers are served, 101 are 431."""
    async with limited() as server:
        lines = [b"x-%d: v\r\n" % i for i in range(100)]
        assert (
            await _status(server.port, b"GET / HTTP/1.1\r\n" + b"".join(lines[:99]) + b"host: x\r\n\r\n")
            == 200
        )
        assert await _status(server.port, b"GET / HTTP/1.1\r\n" + b"".join(lines) + b"host: x\r\n\r\n") == 431


async def test_header_of_64_kib_plus_one_is_431() -> None:
    """A header of exactly the per-header limit is served; 64 KiB + 1 (and limit + 1) is 431."""
    async with limited() as server:
        limit = HttpLimits(max_body_bytes=0).max_header_bytes
        assert await _status(server.port, _GET + _header(b"x-big", limit) + b"\r\n") == 200
        assert await _status(server.port, _GET + _header(b"x-big", limit + 1) + b"\r\n") == 431
        assert await _status(server.port, _GET + _header(b"x-big", 64 * 1024 + 1) + b"\r\n") == 431
    # With the per-header bound raised, the 64 KiB total still holds.
    async with limited(max_header_bytes=1 << 20) as server:
        assert await _status(server.port, _GET + _header(b"x-big", 64 * 1024 + 1) + b"\r\n") == 431


async def test_total_header_bytes_limit() -> None:
    """Headers summing to exactly the total limit are served; one byte more is 431."""
    async with limited(max_headers_bytes=4000, max_header_bytes=1000) as server:
        base = b"GET / HTTP/1.1\r\nhost: x\r\n"  # "host" + "x" = 5 bytes
        filler = [_header(b"x-%d" % i, 1000) for i in range(3)] + [_header(b"x-last", 4000 - 3000 - 5)]
        assert await _status(server.port, base + b"".join(filler) + b"\r\n") == 200
        filler[-1] = _header(b"x-last", 4000 - 3000 - 5 + 1)
        assert await _status(server.port, base + b"".join(filler) + b"\r\n") == 431


async def test_long_request_target_is_414() -> None:
    """A request target over 8 KiB is 414, also when it trickles in without its line end."""
    async with limited() as server:
        ok = b"GET /" + b"a" * (8 * 1024 - 1) + b" HTTP/1.1\r\nhost: x\r\n\r\n"
        assert await _status(server.port, ok) == 200
        too_long = b"GET /" + b"a" * (8 * 1024) + b" HTTP/1.1\r\nhost: x\r\n\r\n"
        assert await _status(server.port, too_long) == 414
        assert await _status(server.port, b"GET /" + b"a" * (64 * 1024)) == 414


async def test_trickling_connections_are_closed_by_the_header_timeout() -> None:
    """200 connections sending one byte at a time get 408 and are closed; another client is served meanwhile."""
    async with limited(header_timeout_seconds=1.0) as server, aiohttp.ClientSession() as session:
        port = server.port
        started = asyncio.Event()
        opened: list[int] = []

        async def trickle() -> bytes:
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                opened.append(1)
                if len(opened) == 200:
                    started.set()
                head = _GET + b"x-slow: " + b"v" * 10_000
                for byte in head:
                    writer.write(bytes([byte]))
                    # One byte, then wait a while for an answer before sending the next one.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            # read(n) takes what has arrived at once: a timeout loses nothing.
                            first = await reader.read(65536)
                        return first + await reader.read()
                return b""
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()

        async with asyncio.timeout(DEADLINE), asyncio.TaskGroup() as group:
            tasks = [group.create_task(trickle()) for _ in range(200)]
            await started.wait()
            await wait_until(lambda: server.connections >= 200, "200 open connections")
            assert await _ready(session, port) == 200
        for task in tasks:
            assert task.result().startswith(b"HTTP/1.1 408 "), task.result()[:80]
        # Only the session's own keep-alive connection is left.
        await wait_until(lambda: server.connections <= 1, "the slow connections gone")
        assert await _ready(session, port) == 200


async def test_silent_new_connection_is_closed_after_the_header_timeout() -> None:
    """A connection that never sends a byte is closed (without an answer) after the header timeout."""
    async with limited(header_timeout_seconds=0.2) as server, raw_connection(server.port) as (reader, _):
        assert await read_eof(reader) == b""


async def test_stalled_body_is_408() -> None:
    """A body that stops arriving is answered 408 and the connection is closed."""
    async with limited(body_timeout_seconds=0.3) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
        answer = await read_response(reader)
        assert answer.status == 408
        assert b"body" in answer.body
        assert await read_eof(reader) == b""


async def test_slow_but_steady_body_is_served() -> None:
    """The body timeout bounds the pause between pieces, not the whole body."""
    async with limited(body_timeout_seconds=0.5) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 8\r\n\r\n")
        for byte in b"abcdefgh":
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await reader.read(1)  # nothing arrives: this only paces the sender
            writer.write(bytes([byte]))
        answer = await read_response(reader)
        assert answer.status == 200
        assert b'"body": "abcdefgh"' in answer.body


async def test_connections_beyond_the_cap_are_refused_with_503() -> None:
    """Past max_connections a new connection is answered 503 and closed; a freed slot serves again."""
    async with limited(max_connections=3) as server, contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(raw_connection(server.port)) for _ in range(3)]
        await wait_until(lambda: server.connections == 3, "three open connections")
        async with raw_connection(server.port) as (reader, _):
            answer = await read_response(reader)
            assert answer.status == 503
            assert answer.headers["retry-after"] == "1"
            assert await read_eof(reader) == b""
        assert server.connections == 3
        # The held connections are served as usual.
        reader, writer = held[0]
        writer.write(_GET + b"\r\n")
        assert (await read_response(reader)).status == 200
        writer.close()
        await wait_until(lambda: server.connections == 2, "a freed slot")
        assert await _status(server.port, _GET + b"\r\n") == 200


async def test_head_trickled_byte_by_byte_is_parsed_whole() -> None:
    """A head sent one byte per write arrives intact (the server buffers it until its end)."""
    async with limited() as server, raw_connection(server.port) as (reader, writer):
        for byte in b"GET /a?b=c HTTP/1.1\r\nhost: x\r\nx-test: " + b"t" * 300 + b"\r\nx-test: u\r\n\r\n":
            writer.write(bytes([byte]))
            await writer.drain()
        answer = await read_response(reader)
        assert answer.status == 200
        assert b'"x_test": "' + b"t" * 300 + b', u"' in answer.body


async def test_pipelined_head_whose_blank_line_arrives_alone() -> None:
    """A pipelined request whose head's final CRLF comes in a later read is still served."""
    async with limited() as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n")
        assert b'"path": "/a"' in (await read_response(reader)).body
        writer.write(b"\r\n")
        assert b'"path": "/b"' in (await read_response(reader)).body


async def test_a_trickled_head_reaches_the_parser_in_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    """Header pieces are not joined by the parser: a head sent byte by byte is fed to it once.

    httptools concatenates the pieces of a header that arrive in separate feeds, which costs
    time quadratic in the header's size when it trickles; the server feeds whole heads only.
    """
    feeds: list[int] = []

    class CountingParser(httptools.HttpRequestParser):  # type: ignore[misc]
        def feed_data(self, data: bytes) -> None:
            feeds.append(len(data))
            super().feed_data(data)

    monkeypatch.setattr(httptools, "HttpRequestParser", CountingParser)
    head = b"GET / HTTP/1.1\r\nhost: x\r\nx-test: " + b"t" * 2000 + b"\r\n\r\n"
    async with limited() as server, raw_connection(server.port) as (reader, writer):
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
        assert (await read_response(reader)).status == 200
    assert feeds == [len(head)]
