"""The pooled HTTP/1.1 client against real servers: aiohttp for well-behaved peers, raw asyncio
servers for peers that misbehave (close early, break off, answer until close)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from multidict import CIMultiDict

from modelplane.libs.embedded_nats import free_port
from modelplane.libs.http1.client import (
    HttpClient,
    UpstreamConnectError,
    UpstreamProtocolError,
)

EIGHT_MIB = 8 * 1024 * 1024
WAIT = 10.0  # seconds a test waits for something that must happen (a failure bound, not a measurement)


@dataclass
class Peer:
    """An aiohttp server; remembers each client connection (by its peer address) it served."""

    address: str
    connections: set[tuple[str, int]]
    release: asyncio.Event
    step: asyncio.Event
    slow_entered: asyncio.Event


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    connections: set[tuple[str, int]] = set()
    release = asyncio.Event()
    step = asyncio.Event()
    slow_entered = asyncio.Event()

    def seen(request: web.Request) -> None:
        assert request.transport is not None
        connections.add(request.transport.get_extra_info("peername"))

    async def echo(request: web.Request) -> web.Response:
        seen(request)
        body = await request.read()
        headers = {
            "x-method": request.method,
            "x-test": request.headers.get("x-test", ""),
            "x-hosts": str(len(request.headers.getall("host"))),
            "x-lengths": ",".join(request.headers.getall("content-length", [])),
        }
        answer = body or f"{request.method} {request.path_qs}".encode()
        return web.Response(status=int(request.query.get("status", "200")), body=answer, headers=headers)

    async def repeated(request: web.Request) -> web.Response:
        seen(request)
        return web.Response(body=b"ok", headers=CIMultiDict([("X-Multi", "a"), ("X-Multi", "b")]))

    async def chunked(request: web.Request) -> web.StreamResponse:
        seen(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for piece in (b"alpha-", b"beta-", b"gamma"):
            await response.write(piece)
        await response.write_eof()
        return response

    async def slow(request: web.Request) -> web.Response:
        seen(request)
        slow_entered.set()
        await release.wait()
        return web.Response(body=b"late")

    async def stepwise(request: web.Request) -> web.StreamResponse:
        seen(request)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"first")
        await step.wait()
        await response.write(b"second")
        await response.write_eof()
        return response

    app = web.Application(client_max_size=2 * EIGHT_MIB)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/repeated", repeated)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/slow", slow)
    app.router.add_get("/stepwise", stepwise)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield Peer(f"{host}:{port}", connections, release, step, slow_entered)
    finally:
        release.set()
        step.set()
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient()
    try:
        yield http
    finally:
        await http.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawServer:
    """A plain TCP server running ``handler`` per connection; counts connections."""

    address: str = ""
    accepted: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[RawServer]]]:
    servers: list[tuple[asyncio.Server, RawServer]] = []

    async def start(handler: Handler) -> RawServer:
        record = RawServer()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            record.tasks.add(task)
            record.accepted += 1
            try:
                await handler(reader, writer)
            except ConnectionError:
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        record.address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        servers.append((server, record))
        return record

    yield start
    for server, record in servers:
        server.close()
        await server.wait_closed()
        for task in record.tasks:
            task.cancel()
        await asyncio.gather(*record.tasks, return_exceptions=True)


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """One request head (requests in these tests have no body)."""
    return await reader.readuntil(b"\r\n\r\n")


def ok(body: bytes, *extra: str) -> bytes:
    head = "".join(f"{line}\r\n" for line in extra)
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{head}\r\n".encode() + body


async def wait_for_event(event: asyncio.Event) -> None:
    async with asyncio.timeout(WAIT):
        await event.wait()


# -- round trips -------------------------------------------------------------------------


async def test_get_round_trip(peer: Peer, client: HttpClient) -> None:
    """A GET returns the server's status, body and lower-cased headers; caller headers reach it."""
    reply = await client.request("GET", peer.address, "/echo?a=1", headers={"X-Test": "yes"}, timeout=WAIT)
    assert reply.status == 200
    assert reply.body == b"GET /echo?a=1"
    assert reply.headers["x-method"] == "GET"
    assert reply.headers["x-test"] == "yes"
    assert "X-Test" in reply.headers
    assert "content-length" in reply.headers


async def test_post_round_trip(peer: Peer, client: HttpClient) -> None:
    """A POST sends its body with one content-length and one host, even when the caller passes its own."""
    headers = {
        "Content-Length": "999",
        "Host": "elsewhere",
        "Connection": "close",
        "Content-Type": "text/plain",
    }
    reply = await client.request(
        "POST", peer.address, "/echo", headers=headers, body=b"payload", timeout=WAIT
    )
    assert (reply.status, reply.body) == (200, b"payload")
    assert reply.headers["x-hosts"] == "1"
    assert reply.headers["x-lengths"] == "7"


async def test_post_without_body_says_zero_length(peer: Peer, client: HttpClient) -> None:
    """A POST without a body is sent with content-length 0."""
    reply = await client.request("POST", peer.address, "/echo", headers={}, timeout=WAIT)
    assert reply.headers["x-lengths"] == "0"


@pytest.mark.parametrize("status", [404, 500])
async def test_error_statuses_are_replies(peer: Peer, client: HttpClient, status: int) -> None:
    """An error status is a reply with its body, not an exception."""
    reply = await client.request(
        "PUT", peer.address, f"/echo?status={status}", headers={}, body=b"x", timeout=WAIT
    )
    assert (reply.status, reply.body) == (status, b"x")


async def test_repeated_headers_are_joined(peer: Peer, client: HttpClient) -> None:
    """A header sent twice is one entry, its values joined with ", "."""
    reply = await client.request("GET", peer.address, "/repeated", headers={}, timeout=WAIT)
    assert reply.headers["x-multi"] == "a, b"


async def test_head_request(peer: Peer, client: HttpClient) -> None:
    """A HEAD answer ends at its head even though it announces a body length."""
    reply = await client.request("HEAD", peer.address, "/echo", headers={}, timeout=WAIT)
    assert (reply.status, reply.body) == (200, b"")
    reply = await client.request("GET", peer.address, "/echo", headers={}, timeout=WAIT)
    assert reply.body == b"GET /echo"


async def test_request_bytes_are_exactly_the_given_headers(
    raw_server: Callable[[Handler], Awaitable[RawServer]], client: HttpClient
) -> None:
    """The request is the request line, host, the caller's headers and our content-length, nothing else."""
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        heads.append(await reader.readexactly(3))
        writer.write(ok(b""))
        await reader.read()

    server = await raw_server(handler)
    await client.request(
        "POST",
        server.address,
        "/v2/x?y=1",
        headers={"x-a": "1", "transfer-encoding": "chunked"},
        body=b"abc",
        timeout=WAIT,
    )
    assert heads == [
        f"POST /v2/x?y=1 HTTP/1.1\r\nhost: {server.address}\r\nx-a: 1\r\ncontent-length: 3\r\n\r\n".encode(),
        b"abc",
    ]


async def test_header_with_line_break_is_refused(client: HttpClient) -> None:
    """A line break in a header or the target is refused before anything is sent."""
    with pytest.raises(ValueError, match="x-evil"):
        await client.request("GET", "127.0.0.1:1", "/", headers={"x-evil": "a\r\nx: y"}, timeout=WAIT)
    with pytest.raises(ValueError, match="x-evil"):
        await client.request("GET", "127.0.0.1:1", "/", headers={"x-evil": "a\nb"}, timeout=WAIT)
    with pytest.raises(ValueError, match="request line"):
        await client.request("GET", "127.0.0.1:1", "/ HTTP/1.0\r\n", headers={}, timeout=WAIT)


async def test_interim_answers_are_ignored(
    raw_server: Callable[[Handler], Awaitable[RawServer]], client: HttpClient
) -> None:
    """A 100 Continue before the real answer is skipped."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"done"))
        await reader.read()

    server = await raw_server(handler)
    reply = await client.request("GET", server.address, "/", headers={}, timeout=WAIT)
    assert (reply.status, reply.body) == (200, b"done")


# -- pooling -----------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection(peer: Peer, client: HttpClient) -> None:
    """Twenty sequential requests travel over a single connection."""
    for index in range(20):
        reply = await client.request(
            "POST", peer.address, "/echo", headers={}, body=b"%d" % index, timeout=WAIT
        )
        assert reply.body == b"%d" % index
    assert len(peer.connections) == 1


async def test_concurrent_requests(peer: Peer, client: HttpClient) -> None:
    """Sixty-four concurrent requests each get their own answer."""
    bodies = [os.urandom(64) + b"%d" % index for index in range(64)]
    replies = await asyncio.gather(
        *(
            client.request("POST", peer.address, "/echo", headers={}, body=body, timeout=WAIT)
            for body in bodies
        )
    )
    assert [reply.body for reply in replies] == bodies
    again = await client.request("GET", peer.address, "/echo", headers={}, timeout=WAIT)
    assert again.status == 200
    assert len(peer.connections) <= 64


async def test_server_closing_idle_connection(
    raw_server: Callable[[Handler], Awaitable[RawServer]], client: HttpClient
) -> None:
    """A pooled connection the server closed after answering does not fail the next request."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(ok(b"once"))
        await writer.drain()

    server = await raw_server(handler)
    for _ in range(3):
        reply = await client.request("GET", server.address, "/", headers={}, timeout=WAIT)
        assert reply.body == b"once"
    assert server.accepted == 3


async def test_pooled_connection_closed_as_we_send_is_retried(
    raw_server: Callable[[Handler], Awaitable[RawServer]], client: HttpClient
) -> None:
    """A reused connection that dies before any answer byte is retried once on a fresh connection."""

    requests_per_connection: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests_per_connection.append(0)
        index = len(requests_per_connection) - 1
        await read_head(reader)
        requests_per_connection[index] += 1
        writer.write(ok(b"first"))
        await read_head(reader)  # the second request on this connection: close without answering
        requests_per_connection[index] += 1

    server = await raw_server(handler)
    assert (await client.request("GET", server.address, "/", headers={}, timeout=WAIT)).body == b"first"
    assert (await client.request("GET", server.address, "/", headers={}, timeout=WAIT)).body == b"first"
    assert requests_per_connection[0] == 2  # the pooled connection got the request first
    assert len(requests_per_connection) == 2


async def test_idle_connections_are_closed_after_idle_seconds(
    raw_server: Callable[[Handler], Awaitable[RawServer]],
) -> None:
    """A connection idle longer than idle_seconds is closed, and the next request opens a new one."""
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(ok(b"hi"))
        await reader.read()  # until the client closes
        closed.set()

    server = await raw_server(handler)
    http = HttpClient(idle_seconds=0.05)
    try:
        await http.request("GET", server.address, "/", headers={}, timeout=WAIT)
        await wait_for_event(closed)
        assert (await http.request("GET", server.address, "/", headers={}, timeout=WAIT)).body == b"hi"
        assert server.accepted == 2
    finally:
        await http.close()


# -- failures ----------------------------------------------------------------------------


async def test_refused_port(client: HttpClient) -> None:
    """Connecting to a port nobody listens on raises UpstreamConnectError naming the address."""
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(UpstreamConnectError, match=address):
        await client.request("GET", address, "/", headers={}, timeout=WAIT)


async def test_close_without_answer(
    raw_server: Callable[[Handler], Awaitable[RawServer]], client: HttpClient
) -> None:
    """A fresh connection closed before any answer byte raises UpstreamConnectError (no retry)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)

    server = await raw_server(handler)
    with pytest.raises(UpstreamConnectError, match=server.address):
        await client.request("GET", server.address, "/", headers={}, timeout=WAIT)
    assert server.accepted == 1


async def test_answer_broken_off(
    raw_server: Callable[[Handler], Awaitable[RawServer]], client: HttpClient
) -> None:
    """An answer closed in the middle of its body raises UpstreamProtocolError."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
        await writer.drain()

    server = await raw_server(handler)
    with pytest.raises(UpstreamProtocolError):
        await client.request("GET", server.address, "/", headers={}, timeout=WAIT)


async def test_malformed_answer(
    raw_server: Callable[[Handler], Awaitable[RawServer]], client: HttpClient
) -> None:
    """An answer that is not HTTP raises UpstreamProtocolError."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await reader.read()

    server = await raw_server(handler)
    with pytest.raises(UpstreamProtocolError, match="malformed"):
        await client.request("GET", server.address, "/", headers={}, timeout=WAIT)


async def test_timeout_closes_connection(peer: Peer, client: HttpClient) -> None:
    """A request past its timeout raises TimeoutError and its connection is never reused."""
    await client.request("GET", peer.address, "/echo", headers={}, timeout=WAIT)
    with pytest.raises(TimeoutError, match=peer.address):
        await client.request("GET", peer.address, "/slow", headers={}, timeout=0.1)
    reply = await client.request("GET", peer.address, "/echo", headers={}, timeout=WAIT)
    assert reply.status == 200
    assert len(peer.connections) == 2


async def test_cancellation_closes_connection(peer: Peer, client: HttpClient) -> None:
    """A cancelled request propagates the cancellation and its connection is never reused."""
    await client.request("GET", peer.address, "/echo", headers={}, timeout=WAIT)
    task = asyncio.ensure_future(client.request("GET", peer.address, "/slow", headers={}, timeout=WAIT))
    await wait_for_event(peer.slow_entered)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.request("GET", peer.address, "/echo", headers={}, timeout=WAIT)
    assert len(peer.connections) == 2


# -- body framing ------------------------------------------------------------------------


async def test_chunked_answer(peer: Peer, client: HttpClient) -> None:
    """A chunked answer's pieces are joined into the body and the connection is reused."""
    reply = await client.request("GET", peer.address, "/chunked", headers={}, timeout=WAIT)
    assert reply.body == b"alpha-beta-gamma"
    await client.request("GET", peer.address, "/chunked", headers={}, timeout=WAIT)
    assert len(peer.connections) == 1


async def test_answer_until_close(
    raw_server: Callable[[Handler], Awaitable[RawServer]], client: HttpClient
) -> None:
    """An answer without length or chunking ends when the server closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nhello ")
        await writer.drain()
        writer.write(b"world")

    server = await raw_server(handler)
    reply = await client.request("GET", server.address, "/", headers={}, timeout=WAIT)
    assert (reply.status, reply.body) == (200, b"hello world")
    assert (await client.request("GET", server.address, "/", headers={}, timeout=WAIT)).body == b"hello world"
    assert server.accepted == 2


async def test_eight_mib_bodies(peer: Peer, client: HttpClient) -> None:
    """An 8 MiB request body is echoed back intact as an 8 MiB answer."""
    body = os.urandom(EIGHT_MIB)
    reply = await client.request("POST", peer.address, "/echo", headers={}, body=body, timeout=WAIT * 3)
    assert reply.body == body


# -- streams -----------------------------------------------------------------------------


async def test_stream_chunks_arrive_one_by_one(peer: Peer, client: HttpClient) -> None:
    """A stream yields the first piece before the server has written the second."""
    async with client.stream("GET", peer.address, "/stepwise", headers={}, timeout=WAIT) as stream:
        assert stream.status == 200
        assert stream.headers["transfer-encoding"] == "chunked"
        chunks = stream.chunks()
        assert await anext(chunks) == b"first"
        peer.step.set()
        assert [chunk async for chunk in chunks] == [b"second"]
    reply = await client.request("GET", peer.address, "/echo", headers={}, timeout=WAIT)
    assert reply.status == 200
    assert len(peer.connections) == 1


async def test_stream_read(peer: Peer, client: HttpClient) -> None:
    """A stream's read() returns the whole body."""
    async with client.stream(
        "POST", peer.address, "/echo", headers={}, body=b"streamed", timeout=WAIT
    ) as stream:
        assert stream.status == 200
        assert await stream.read() == b"streamed"


async def test_stream_early_exit_closes_connection(
    raw_server: Callable[[Handler], Awaitable[RawServer]], client: HttpClient
) -> None:
    """Leaving a stream before its body ended closes the connection."""
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        try:
            await reader.read()
        finally:
            closed.set()

    server = await raw_server(handler)
    async with client.stream("GET", server.address, "/", headers={}, timeout=WAIT) as stream:
        assert await anext(stream.chunks()) == b"first"
    await wait_for_event(closed)


async def test_stream_chunk_timeout(
    raw_server: Callable[[Handler], Awaitable[RawServer]], client: HttpClient
) -> None:
    """A stream whose next piece does not come within the timeout raises TimeoutError."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await reader.read()

    server = await raw_server(handler)
    async with client.stream("GET", server.address, "/", headers={}, timeout=0.1) as stream:
        chunks = stream.chunks()
        assert await anext(chunks) == b"first"
        with pytest.raises(TimeoutError, match=server.address):
            await anext(chunks)


async def test_stream_head_timeout(peer: Peer, client: HttpClient) -> None:
    """A stream whose head does not come within the timeout raises TimeoutError."""
    with pytest.raises(TimeoutError):
        async with client.stream("GET", peer.address, "/slow", headers={}, timeout=0.1):
            pass


async def test_stream_broken_off(
    raw_server: Callable[[Handler], Awaitable[RawServer]], client: HttpClient
) -> None:
    """A stream closed in the middle of its body raises UpstreamProtocolError after the pieces that came."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()

    server = await raw_server(handler)
    async with client.stream("GET", server.address, "/", headers={}, timeout=WAIT) as stream:
        chunks = stream.chunks()
        assert await anext(chunks) == b"first"
        with pytest.raises(UpstreamProtocolError):
            await anext(chunks)


# -- lifecycle ---------------------------------------------------------------------------


async def test_close_is_idempotent(peer: Peer) -> None:
    """close() may be called twice; a request after it raises UpstreamConnectError."""
    http = HttpClient()
    await http.request("GET", peer.address, "/echo", headers={}, timeout=WAIT)
    await http.close()
    await http.close()
    with pytest.raises(UpstreamConnectError):
        await http.request("GET", peer.address, "/echo", headers={}, timeout=WAIT)


async def test_stream_of_eight_mib(peer: Peer, client: HttpClient) -> None:
    """An 8 MiB answer read through a stream arrives intact and leaves the connection reusable."""
    body = os.urandom(EIGHT_MIB)
    async with client.stream("POST", peer.address, "/echo", headers={}, body=body, timeout=WAIT) as stream:
        assert await stream.read() == body
    assert (await client.request("GET", peer.address, "/echo", headers={}, timeout=WAIT)).status == 200
    assert len(peer.connections) == 1
