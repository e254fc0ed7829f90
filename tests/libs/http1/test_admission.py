"""The HTTP/1.1 server's admission hook and a request body's lifetime.

``admit`` sees each request head before any body byte is read: its answer goes out instead of
the handler's, no "100 Continue" is sent and the body is never read; what it took for a request
(``on_finish``) is given back once, whether the request reached its handler or not. Real server,
raw sockets (the exact bytes on the wire matter here) and aiohttp.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from modelplane.libs.http1 import connection
from modelplane.libs.http1.messages import HttpRequest, HttpResponse, RequestHead, Response
from modelplane.libs.http1.server import Admit, HttpLimits, HttpServer, RequestHandler
from tests.libs.http1.test_server import HOST, raw_connection, read_eof, read_response, wait_until

# A head asking to be refused (the hook below refuses requests carrying x-deny).
_DENIED = b"POST /denied HTTP/1.1\r\nHost: x\r\nx-deny: yes\r\nContent-Length: 5\r\n"


class Recorder:
    """An admission hook and handler that note what they saw, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def admit(self, head: RequestHead) -> Response | None:
        self.events.append(f"admit {head.raw_path}")
        if "x-deny" in head.headers:
            return HttpResponse(401, b"refused from the head", {"x-refused": "yes"})
        head.state["admitted"] = head.raw_path
        head.on_finish(lambda: self.events.append(f"finish {head.raw_path}"))
        return None

    async def handle(self, request: HttpRequest) -> Response:
        self.events.append(f"handle {request.raw_path} {request.state.get('admitted')}")
        headers = {"connection": "close"} if request.raw_path == "/close" else {}
        return HttpResponse(200, request.body, headers)


@asynccontextmanager
async def admitting(
    handler: RequestHandler, admit: Admit | None, *, max_body_bytes: int = 1 << 20
) -> AsyncIterator[HttpServer]:
    server = HttpServer(handler, HttpLimits(max_body_bytes=max_body_bytes), admit=admit)
    await server.start(HOST, 0)
    try:
        yield server
    finally:
        await server.stop(grace_seconds=1.0)


async def test_refusal_from_the_head_sends_no_100_continue() -> None:
    """A refused request that waits with Expect: 100-continue gets the refusal, never a 100."""
    recorder = Recorder()
    async with (
        admitting(recorder.handle, recorder.admit) as server,
        raw_connection(server.port) as (reader, writer),
    ):
        writer.write(_DENIED + b"Expect: 100-continue\r\n\r\n")
        response = await read_response(reader)
        assert response.status == 401
        assert response.body == b"refused from the head"
        assert response.headers["x-refused"] == "yes"
        assert response.headers["connection"] == "close"
        assert await read_eof(reader) == b""
    assert recorder.events == ["admit /denied"]


async def test_refused_client_that_sends_its_body_anyway_gets_the_refusal_and_a_close() -> None:
    """A body sent without waiting is never read: the refusal is the one answer, then EOF
    (a request pipelined behind the body is not answered either)."""
    recorder = Recorder()
    async with (
        admitting(recorder.handle, recorder.admit) as server,
        raw_connection(server.port) as (reader, writer),
    ):
        writer.write(_DENIED + b"\r\nhello" + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await read_response(reader)
        assert response.status == 401
        assert response.headers["connection"] == "close"
        assert await read_eof(reader) == b""
    assert recorder.events == ["admit /denied"]


async def test_refusal_is_answered_after_the_answers_owed() -> None:
    """Pipelined: the admitted first request is answered, then the refusal of the second."""
    recorder = Recorder()
    async with (
        admitting(recorder.handle, recorder.admit) as server,
        raw_connection(server.port) as (reader, writer),
    ):
        writer.write(b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok" + _DENIED + b"\r\n")
        first = await read_response(reader)
        second = await read_response(reader)
        assert await read_eof(reader) == b""
    assert (first.status, first.body, second.status) == (200, b"ok", 401)
    assert recorder.events[:2] == ["admit /first", "admit /denied"]
    assert recorder.events[2:] == ["handle /first /first", "finish /first"]


async def test_admitted_request_carries_the_state_and_finishes_after_its_handler() -> None:
    """What admit put in the head's state reaches the handler; on_finish runs once, after it."""
    recorder = Recorder()
    async with (
        admitting(recorder.handle, recorder.admit) as server,
        raw_connection(server.port) as (reader, writer),
    ):
        writer.write(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        async with asyncio.timeout(10):
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        response = await read_response(reader)
        assert (response.status, response.body) == (200, b"hello")
        # The connection stays open for the next request.
        writer.write(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader)).status == 200
    assert recorder.events == [
        "admit /a",
        "handle /a /a",
        "finish /a",
        "admit /b",
        "handle /b /b",
        "finish /b",
    ]


async def test_finish_runs_for_requests_that_never_reach_the_handler() -> None:
    """Given back without a handler: a client gone mid-body, a chunked body over the limit,
    and a pipelined request behind an answer that closes the connection."""
    recorder = Recorder()
    async with admitting(recorder.handle, recorder.admit, max_body_bytes=10) as server:
        async with raw_connection(server.port) as (_, writer):
            writer.write(b"POST /gone HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe")
            await writer.drain()
            await wait_until(lambda: "admit /gone" in recorder.events, "the head to be admitted")
        await wait_until(lambda: "finish /gone" in recorder.events, "the lost request to finish")

        async with raw_connection(server.port) as (reader, writer):
            writer.write(
                b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n"
            )
            assert (await read_response(reader)).status == 413
        assert "finish /big" in recorder.events

        async with raw_connection(server.port) as (reader, writer):
            writer.write(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET /behind HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader)).status == 200
            assert await read_eof(reader) == b""
    assert [e for e in recorder.events if "gone" in e or "big" in e] == [
        "admit /gone",
        "finish /gone",
        "admit /big",
        "finish /big",
    ]
    assert [e for e in recorder.events if "close" in e or "behind" in e] == [
        "admit /close",
        "admit /behind",
        "handle /close /close",
        "finish /close",
        "finish /behind",
    ]


async def test_a_failing_hook_is_500_and_a_close() -> None:
    """A hook that raises is logged and answered 500 (the body unread); the server goes on."""

    def broken(head: RequestHead) -> Response | None:
        raise RuntimeError("hook bug")

    recorder = Recorder()
    async with admitting(recorder.handle, broken) as server, raw_connection(server.port) as (reader, writer):
        writer.write(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        assert (await read_response(reader)).status == 500
        assert await read_eof(reader) == b""
    assert recorder.events == []


async def test_handler_holds_a_large_body_once() -> None:
    """While the handler has the body, the connection keeps none of the pieces it joined: the
    memory allocated in connection.py and still alive is the body once, not twice."""
    size = 8 << 20
    alive: list[int] = []

    async def measure(request: HttpRequest) -> Response:
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, connection.__file__)])
        alive.append(sum(stat.size for stat in snapshot.statistics("filename")))
        return HttpResponse(200, str(len(request.body)).encode())

    tracemalloc.start()
    try:
        async with (
            admitting(measure, None, max_body_bytes=size) as server,
            raw_connection(server.port) as (reader, writer),
        ):
            writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
            piece = b"x" * (64 << 10)
            for _ in range(size // len(piece)):
                writer.write(piece)
                await writer.drain()
            response = await read_response(reader)
    finally:
        tracemalloc.stop()
    assert response.body == str(size).encode()
    # At least the joined body (the measure sees it), well under the body held twice.
    assert size <= alive[0] < size * 3 // 2, alive
