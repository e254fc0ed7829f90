"""The gateway's HTTP/1.1 server against real clients: aiohttp, and raw sockets for protocol edges."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import yarl

from modelplane.libs.http1.messages import HttpRequest, HttpResponse, Response, StreamingResponse
from modelplane.libs.http1.server import HttpLimits, HttpServer, RequestHandler

HOST = "127.0.0.1"
DEADLINE = 10.0


@asynccontextmanager
async def serving(
    handler: RequestHandler, *, max_body_bytes: int = 1 << 20, keepalive_seconds: float = 75.0
) -> AsyncIterator[HttpServer]:
    server = HttpServer(
        handler, HttpLimits(max_body_bytes=max_body_bytes, keepalive_seconds=keepalive_seconds)
    )
    await server.start(HOST, 0)
    try:
        yield server
    finally:
        await server.stop(grace_seconds=1.0)


async def echo(request: HttpRequest) -> Response:
    body = {
        "method": request.method,
        "raw_path": request.raw_path,
        "path": request.path,
        "query": request.query,
        "x_test": request.headers.get("x-test"),
        "body": request.body.decode(),
    }
    return HttpResponse(200, json.dumps(body).encode(), {"content-type": "application/json", "x-echo": "yes"})


@dataclass
class RawResponse:
    status_line: str
    status: int
    headers: dict[str, str]
    body: bytes


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False) -> RawResponse:
    """Read one answer from a raw socket (content-length, chunked or until EOF)."""
    async with asyncio.timeout(DEADLINE):
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        lines = head.split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = b""
        if head_only or " 204 " in lines[0] or " 304 " in lines[0]:
            pass
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                body += data[:-2]
        else:
            body = await reader.read()
    return RawResponse(lines[0], int(lines[0].split(" ", 2)[1]), headers, body)


async def read_eof(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(DEADLINE):
        return await reader.read()


@asynccontextmanager
async def raw_connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def counting_session(counter: list[int]) -> aiohttp.ClientSession:
    """An aiohttp session with one pooled connection that counts the TCP connections it opens."""

    async def on_create(*_: object) -> None:
        counter.append(1)

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_create)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), trace_configs=[trace])


async def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_get_and_post_round_trip() -> None:
    """A GET and a POST reach the handler with method, raw and decoded path, query, headers and body."""
    async with serving(echo) as server, aiohttp.ClientSession() as session:
        url = yarl.URL(f"http://{HOST}:{server.port}/v2/models/my%20model/infer?x=1&y=a%20b", encoded=True)
        async with session.get(url, headers={"X-Test": "hello"}) as response:
            assert response.status == 200
            assert response.headers["x-echo"] == "yes"
            got = await response.json()
        assert got == {
            "method": "GET",
            "raw_path": "/v2/models/my%20model/infer",
            "path": "/v2/models/my model/infer",
            "query": "x=1&y=a%20b",
            "x_test": "hello",
            "body": "",
        }
        async with session.post(f"http://{HOST}:{server.port}/post", data=b'{"a": 1}') as response:
            assert response.status == 200
            assert int(response.headers["content-length"]) == len(await response.read())
            got = await response.json()
        assert (got["method"], got["raw_path"], got["query"], got["body"]) == (
            "POST",
            "/post",
            "",
            '{"a": 1}',
        )


async def test_repeated_request_headers_are_joined() -> None:
    """Request header names are lower-case and repeated ones are joined with ', '."""
    seen: list[HttpRequest] = []

    async def handler(request: HttpRequest) -> Response:
        seen.append(request)
        return HttpResponse(204)

    async with serving(handler) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Many: a\r\nx-many: b\r\n\r\n")
        response = await read_response(reader)
    assert response.status == 204
    assert "content-length" not in response.headers
    assert dict(seen[0].headers) == {"host": "x", "x-many": "a, b"}


async def test_keep_alive_reuses_one_connection() -> None:
    """Sequential HTTP/1.1 requests from one client share one TCP connection."""
    created: list[int] = []
    async with serving(echo) as server, counting_session(created) as session:
        for i in range(5):
            async with session.get(f"http://{HOST}:{server.port}/n/{i}") as response:
                assert (await response.json())["raw_path"] == f"/n/{i}"
    assert len(created) == 1


async def test_http10_closes_after_the_answer() -> None:
    """An HTTP/1.0 request without keep-alive is answered with connection: close, then EOF."""
    async with serving(echo) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"GET /old HTTP/1.0\r\n\r\n")
        response = await read_response(reader)
        assert response.status_line == "HTTP/1.1 200 OK"
        assert response.headers["connection"] == "close"
        assert json.loads(response.body)["raw_path"] == "/old"
        assert await read_eof(reader) == b""


async def test_http10_keep_alive_is_honoured() -> None:
    """An HTTP/1.0 request with Connection: keep-alive keeps the connection and says so."""
    async with serving(echo) as server, raw_connection(server.port) as (reader, writer):
        for path in (b"/a", b"/b"):
            writer.write(b"GET " + path + b" HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            response = await read_response(reader)
            assert response.headers["connection"] == "keep-alive"
            assert json.loads(response.body)["raw_path"] == path.decode()


async def test_pipelined_requests_are_answered_in_order() -> None:
    """Pipelined requests are handled one at a time and answered in arrival order."""
    calls: list[str] = []
    slow_started = asyncio.Event()
    release = asyncio.Event()

    async def handler(request: HttpRequest) -> Response:
        calls.append(request.raw_path)
        if request.raw_path == "/slow":
            slow_started.set()
            await release.wait()
        return HttpResponse(200, request.raw_path.encode())

    async with serving(handler) as server, raw_connection(server.port) as (reader, writer):
        writer.write(
            b"".join(b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % p for p in (b"slow", b"fast", b"third"))
        )
        await asyncio.wait_for(slow_started.wait(), DEADLINE)
        assert calls == ["/slow"]
        release.set()
        bodies = [(await read_response(reader)).body for _ in range(3)]
    assert bodies == [b"/slow", b"/fast", b"/third"]
    assert calls == ["/slow", "/fast", "/third"]


async def test_many_pipelined_requests_pause_and_resume_reading() -> None:
    """More pipelined requests than the queue holds are all answered, in order."""
    async with serving(echo) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(50)))
        paths = [json.loads((await read_response(reader)).body)["raw_path"] for _ in range(50)]
    assert paths == [f"/{i}" for i in range(50)]


async def test_chunked_request_body() -> None:
    """A chunked request body arriving in pieces reaches the handler whole."""
    async with serving(echo) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        await writer.drain()
        writer.write(b"lo\r\n6\r\n world\r\n")
        await writer.drain()
        writer.write(b"0\r\n\r\n")
        response = await read_response(reader)
    assert json.loads(response.body)["body"] == "hello world"


async def test_expect_100_continue() -> None:
    """A request with Expect: 100-continue gets the interim answer before it sends its body."""
    async with serving(echo) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        async with asyncio.timeout(DEADLINE):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        response = await read_response(reader)
    assert response.status == 200
    assert json.loads(response.body)["body"] == "hello"


async def test_declared_body_over_limit_is_413() -> None:
    """A declared Content-Length over the limit is answered 413 (no 100 Continue) and closed."""
    async with serving(echo, max_body_bytes=10) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        response = await read_response(reader)
        assert response.status == 413
        assert json.loads(response.body) == {"error": "request body is larger than 10 bytes"}
        assert response.headers["connection"] == "close"
        assert await read_eof(reader) == b""


async def test_body_at_the_limit_is_accepted() -> None:
    """A body of exactly max_body_bytes is served."""
    async with serving(echo, max_body_bytes=10) as server, aiohttp.ClientSession() as session:
        response = await session.post(f"http://{HOST}:{server.port}/", data=b"0123456789")
        assert response.status == 200
        assert (await response.json())["body"] == "0123456789"


async def test_chunked_body_over_limit_is_413() -> None:
    """A chunked body that grows past the limit is answered 413 and the connection closed."""
    async with serving(echo, max_body_bytes=10) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"5\r\nhello\r\n5\r\nworld\r\n5\r\nagain\r\n0\r\n\r\n")
        response = await read_response(reader)
        assert response.status == 413
        assert json.loads(response.body) == {"error": "request body is larger than 10 bytes"}
        assert await read_eof(reader) == b""


async def test_garbage_is_400() -> None:
    """Bytes that are not HTTP are answered 400 with the parser's reason, then closed."""
    async with serving(echo) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"\x00\x01GARBAGE\r\n\r\n")
        response = await read_response(reader)
        assert response.status == 400
        assert json.loads(response.body)["error"].startswith("bad request: ")
        assert await read_eof(reader) == b""


async def test_upgrade_request_is_400() -> None:
    """A protocol upgrade request is refused with 400 and the connection closed."""
    called: list[HttpRequest] = []

    async def handler(request: HttpRequest) -> Response:
        called.append(request)
        return HttpResponse(200)

    async with serving(handler) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        response = await read_response(reader)
        assert response.status == 400
        assert json.loads(response.body) == {"error": "bad request: protocol upgrade is not supported"}
        assert await read_eof(reader) == b""
    assert called == []


async def test_error_after_pipelined_request_keeps_order() -> None:
    """A malformed request pipelined after a good one is answered after the good one's answer."""
    async with serving(echo) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"GET /good HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP AT ALL\r\n\r\n")
        first = await read_response(reader)
        second = await read_response(reader)
        assert (first.status, second.status) == (200, 400)
        assert await read_eof(reader) == b""


async def test_handler_exception_is_500_and_connection_survives() -> None:
    """A handler that raises yields 500 internal error and the same connection serves the next request."""

    async def handler(request: HttpRequest) -> Response:
        if request.raw_path == "/boom":
            raise RuntimeError("broken route")
        return HttpResponse(200, b"fine")

    created: list[int] = []
    async with serving(handler) as server, counting_session(created) as session:
        async with session.get(f"http://{HOST}:{server.port}/boom") as response:
            assert response.status == 500
            assert await response.json() == {"error": "internal error"}
        async with session.get(f"http://{HOST}:{server.port}/ok") as response:
            assert (response.status, await response.read()) == (200, b"fine")
    assert len(created) == 1


async def test_server_computes_content_length_and_head_has_no_body() -> None:
    """The server replaces a handler's Content-Length, and a HEAD answer carries headers only."""

    async def handler(request: HttpRequest) -> Response:
        return HttpResponse(200, b"hello", {"Content-Length": "999", "x-kind": request.method})

    async with serving(handler) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /h HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await read_response(reader, head_only=True)
        get = await read_response(reader)
    assert (head.headers["content-length"], head.headers["x-kind"]) == ("5", "HEAD")
    assert (get.headers["content-length"], get.body, get.headers["x-kind"]) == ("5", b"hello", "GET")


async def test_streaming_response_arrives_chunk_by_chunk() -> None:
    """Each chunk of a StreamingResponse reaches the client before the next one is produced."""
    go = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"one"
        yield b""  # empty chunks are skipped (an empty chunk would end the body)
        await go.wait()
        yield b"two"

    async def handler(request: HttpRequest) -> Response:
        return StreamingResponse(200, chunks(), {"content-type": "text/event-stream"})

    async with serving(handler) as server, aiohttp.ClientSession() as session:
        async with session.get(f"http://{HOST}:{server.port}/stream") as response:
            assert response.headers["transfer-encoding"] == "chunked"
            assert response.headers["content-type"] == "text/event-stream"
            first, _ = await asyncio.wait_for(response.content.readchunk(), DEADLINE)
            assert first == b"one"
            go.set()
            assert await response.read() == b"two"
        # The connection is still usable after the stream ended.
        go.clear()
        go.set()
        async with session.get(f"http://{HOST}:{server.port}/stream") as response:
            assert await response.read() == b"onetwo"


async def test_streaming_to_http10_client_is_unchunked_and_closes() -> None:
    """An HTTP/1.0 client gets the stream's bytes as they are, ended by closing the connection."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"one"
        yield b"two"

    async def handler(request: HttpRequest) -> Response:
        return StreamingResponse(200, chunks())

    async with serving(handler) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"GET /s HTTP/1.0\r\n\r\n")
        response = await read_response(reader)
    assert "transfer-encoding" not in response.headers
    assert response.headers["connection"] == "close"
    assert response.body == b"onetwo"


async def test_client_disconnect_mid_stream_closes_the_iterator() -> None:
    """When the client goes away during a stream the server stops and closes the chunk iterator."""
    go = asyncio.Event()
    closed = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"first"
            while True:
                await go.wait()
                go.clear()
                yield b"more"
        finally:
            closed.set()

    async def handler(request: HttpRequest) -> Response:
        return StreamingResponse(200, chunks())

    async with serving(handler) as server:
        async with raw_connection(server.port) as (reader, writer):
            writer.write(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await read_response(reader, head_only=True)
            assert head.headers["transfer-encoding"] == "chunked"
            async with asyncio.timeout(DEADLINE):
                assert await reader.readuntil(b"first\r\n") == b"5\r\nfirst\r\n"
        # Let the iterator produce until the server notices the closed connection.
        deadline = time.monotonic() + DEADLINE
        while not closed.is_set():
            assert time.monotonic() < deadline, "the chunk iterator was never closed"
            go.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), 0.05)


async def test_stream_that_raises_cuts_the_connection() -> None:
    """An iterator that fails mid-stream ends the connection without the final empty chunk."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"partial"
        raise RuntimeError("upstream broke")

    async def handler(request: HttpRequest) -> Response:
        return StreamingResponse(200, chunks())

    async with serving(handler) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
        await read_response(reader, head_only=True)
        rest = await read_eof(reader)
    assert rest == b"7\r\npartial\r\n"


async def test_client_disconnect_during_handler_is_harmless() -> None:
    """A client that leaves while its request is in the handler does not disturb the server."""
    started = asyncio.Event()
    release = asyncio.Event()
    finished = asyncio.Event()

    async def handler(request: HttpRequest) -> Response:
        if request.raw_path == "/slow":
            started.set()
            await release.wait()
            finished.set()
        return HttpResponse(200, b"ok")

    async with serving(handler) as server:
        async with raw_connection(server.port) as (_, writer):
            writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(started.wait(), DEADLINE)
        release.set()
        await asyncio.wait_for(finished.wait(), DEADLINE)
        async with raw_connection(server.port) as (reader, writer):
            writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader)).body == b"ok"


async def test_idle_connection_is_closed_after_keepalive() -> None:
    """A keep-alive connection with no new request is closed after keepalive_seconds."""
    async with (
        serving(echo, keepalive_seconds=0.2) as server,
        raw_connection(server.port) as (reader, writer),
    ):
        writer.write(b"GET /once HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await read_response(reader)
        assert "connection" not in response.headers
        assert await read_eof(reader) == b""


async def test_stop_waits_for_in_flight_request_and_is_idempotent() -> None:
    """stop() closes the listener and idle connections, lets a running request finish, and may repeat."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def handler(request: HttpRequest) -> Response:
        if request.raw_path == "/slow":
            started.set()
            await release.wait()
        return HttpResponse(200, b"done")

    server = HttpServer(handler, HttpLimits(max_body_bytes=1024))
    await server.start(HOST, 0)
    port = server.port
    async with raw_connection(port) as (idle_reader, idle_writer), raw_connection(port) as (reader, writer):
        idle_writer.write(b"GET /quick HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(idle_reader)).body == b"done"
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(started.wait(), DEADLINE)

        stop = asyncio.create_task(server.stop(grace_seconds=30.0))
        assert await read_eof(idle_reader) == b""

        async def refused() -> bool:
            try:
                _, probe = await asyncio.open_connection(HOST, port)
            except ConnectionRefusedError:
                return True
            probe.close()
            await probe.wait_closed()
            return False

        deadline = time.monotonic() + DEADLINE
        while not await refused():
            assert time.monotonic() < deadline, "the listener was not closed"
            await asyncio.sleep(0.01)
        assert not stop.done()

        release.set()
        response = await read_response(reader)
        assert (response.status, response.body, response.headers["connection"]) == (200, b"done", "close")
        await asyncio.wait_for(stop, DEADLINE)
        assert await read_eof(reader) == b""
    await server.stop()
    await server.stop(grace_seconds=0)


async def test_stop_aborts_requests_past_the_grace_period() -> None:
    """A request still in the handler after the grace period is cancelled and its connection aborted."""
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def handler(request: HttpRequest) -> Response:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return HttpResponse(200)

    server = HttpServer(handler, HttpLimits(max_body_bytes=1024))
    await server.start(HOST, 0)
    async with raw_connection(server.port) as (reader, writer):
        writer.write(b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(started.wait(), DEADLINE)
        await asyncio.wait_for(server.stop(grace_seconds=0.05), DEADLINE)
        assert cancelled.is_set()
        with contextlib.suppress(ConnectionError):
            assert await read_eof(reader) == b""


async def test_many_concurrent_requests_all_succeed() -> None:
    """Hundreds of requests over a few keep-alive connections are all answered correctly."""
    async with serving(echo) as server:
        connector = aiohttp.TCPConnector(limit=4)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(i: int) -> str:
                async with session.post(
                    f"http://{HOST}:{server.port}/r/{i}", data=str(i).encode()
                ) as response:
                    assert response.status == 200
                    got = await response.json()
                    return f"{got['raw_path']}:{got['body']}"

            results = await asyncio.gather(*(one(i) for i in range(300)))
    assert results == [f"/r/{i}:{i}" for i in range(300)]
