"""Property tests: arbitrary and near-valid bytes against the real HTTP/1.1 server.

Whatever a client sends, no exception escapes the server (the loop's exception handler and the
error logs stay empty) and the client reads only well-formed answers, then the end of the
connection: short deadlines make every connection end on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelplane.libs.http1.limits import HttpLimits
from modelplane.libs.http1.server import HttpServer
from tests.libs.http1.test_server import DEADLINE, HOST, echo

_STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]*")
# What the echo server may answer: served, or rejected for a reason the client caused.
_EXPECTED = {100, 200, 400, 408, 413, 414, 431}
_FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
async def fuzzed() -> AsyncIterator[tuple[HttpServer, list[dict[str, Any]]]]:
    """A server with short deadlines and small limits, and the loop errors seen while it runs."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    limits = HttpLimits(
        max_body_bytes=256,
        keepalive_seconds=0.05,
        header_timeout_seconds=0.05,
        body_timeout_seconds=0.05,
        max_request_line_bytes=128,
        max_header_bytes=128,
        max_headers_bytes=512,
        max_headers=8,
    )
    server = HttpServer(echo, limits)
    await server.start(HOST, 0)
    try:
        yield server, errors
    finally:
        await server.stop(grace_seconds=1.0)
        loop.set_exception_handler(previous)


def _answers(data: bytes) -> list[int]:
    """The statuses of the answers in ``data``; fails on anything that is not a well-formed answer.

    The last answer may be cut short only where the server reset the connection.
    """
    statuses = []
    while data:
        end = data.find(b"\r\n\r\n")
        assert end >= 0, f"incomplete head: {data[:200]!r}"
        lines = data[:end].split(b"\r\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        assert match, f"bad status line: {lines[0]!r}"
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            assert sep, f"bad header line: {line!r}"
            assert name, f"bad header line: {line!r}"
            assert name == name.strip(), f"bad header line: {line!r}"
            headers[name.lower()] = value.strip()
        status = int(match.group(1))
        statuses.append(status)
        rest = data[end + 4 :]
        if status == 100:
            data = rest
            continue
        if b"content-length" in headers:
            length = int(headers[b"content-length"])
            assert len(rest) >= length, "body shorter than its content-length"
            data = rest[length:]
        else:
            assert headers.get(b"transfer-encoding") == b"chunked", f"no framing: {lines!r}"
            while True:
                size_end = rest.index(b"\r\n")
                size = int(rest[:size_end], 16)
                rest = rest[size_end + 2 + size + 2 :]
                if size == 0:
                    break
            data = rest
    return statuses


async def _exchange(port: int, chunks: list[bytes]) -> bytes:
    """Send ``chunks`` one write each and read until the server ends the connection."""
    reader, writer = await asyncio.open_connection(HOST, port)
    received = bytearray()
    try:
        async with asyncio.timeout(DEADLINE):
            with contextlib.suppress(ConnectionError):
                for chunk in chunks:
                    writer.write(chunk)
                    await writer.drain()
            with contextlib.suppress(ConnectionError):
                while piece := await reader.read(65536):
                    received += piece
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return bytes(received)


async def _check(server: HttpServer, errors: list[dict[str, Any]], chunks: list[bytes]) -> None:
    with structlog.testing.capture_logs() as logs:
        data = await _exchange(server.port, chunks)
    assert not errors, errors
    assert not [e for e in logs if e["log_level"] in ("error", "critical")], logs
    for status in _answers(data):
        assert status in _EXPECTED, status


@_FUZZ
@given(chunks=st.lists(st.binary(max_size=300), max_size=4))
async def test_arbitrary_bytes_get_answers_or_a_close(
    fuzzed: tuple[HttpServer, list[dict[str, Any]]], chunks: list[bytes]
) -> None:
    """Arbitrary bytes: no exception escapes, every answer is well-formed, the connection ends."""
    await _check(*fuzzed, chunks)


_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-ABC0123456789", min_size=0, max_size=12)
_NAMES = (
    st.sampled_from(
        ["host", "content-length", "transfer-encoding", "expect", "connection", "upgrade", "x-test"]
    )
    | _TOKEN
)
_VALUES = st.sampled_from(
    ["0", "5", "-1", "chunked", "100-continue", "close", "keep-alive", "9" * 30]
) | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=40)


@st.composite
def _near_valid(draw: st.DrawFn) -> list[bytes]:
    """One to three requests that are valid or nearly so, cut into pieces at arbitrary points."""
    stream = b""
    for _ in range(draw(st.integers(1, 3))):
        # (No HEAD: its answer's content-length describes a body that is not sent.)
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "BREW", ""]))
        target = draw(
            st.sampled_from(["/", "/a?b=c", "*", "http://h/x", "/%zz"]) | _TOKEN.map(lambda t: "/" + t)
        )
        version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x"]))
        eol = draw(st.sampled_from(["\r\n", "\n", "\r\n", "\r\n"]))
        headers = draw(st.lists(st.tuples(_NAMES, _VALUES), max_size=10))
        body = draw(st.binary(max_size=300))
        head = f"{method} {target} {version}{eol}" + "".join(f"{n}: {v}{eol}" for n, v in headers) + eol
        stream += head.encode("latin-1") + body
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]


@_FUZZ
@given(chunks=_near_valid())
async def test_near_valid_requests_get_answers_or_a_close(
    fuzzed: tuple[HttpServer, list[dict[str, Any]]], chunks: list[bytes]
) -> None:
    """Near-valid requests: no exception escapes, every answer is well-formed, the connection ends."""
    await _check(*fuzzed, chunks)


@st.composite
def _valid_head(draw: st.DrawFn) -> tuple[bytes, int]:
    """A valid GET head with random target length and headers, and the status the limits call for."""
    target = "/" + "t" * draw(st.integers(0, 160))
    names = draw(st.lists(st.text(alphabet="abcdefghij", min_size=1, max_size=20), max_size=11))
    headers = [(f"x-{name}", "v" * draw(st.integers(0, 140))) for name in names]
    head = f"GET {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
    sizes = [len(n) + len(v) for n, v in headers]
    # The limits of the ``fuzzed`` server, checked in the order the server meets them.
    if len(target) > 128:
        expected = 414
    elif any(s > 128 or i >= 8 or sum(sizes[: i + 1]) > 512 for i, s in enumerate(sizes)):
        expected = 431
    else:
        expected = 200
    return head.encode(), expected


@_FUZZ
@given(case=_valid_head(), cuts=st.lists(st.integers(0, 2000), max_size=4))
async def test_head_limits_match_their_definition(
    fuzzed: tuple[HttpServer, list[dict[str, Any]]], case: tuple[bytes, int], cuts: list[int]
) -> None:
    """A valid head, however it is cut into writes, is served exactly when it is within every limit."""
    head, expected = case
    points = sorted(min(c, len(head)) for c in cuts)
    chunks = [head[a:b] for a, b in zip([0, *points], [*points, len(head)], strict=True)]
    server, errors = fuzzed
    data = await _exchange(server.port, chunks)
    assert not errors, errors
    assert _answers(data) == [expected]
