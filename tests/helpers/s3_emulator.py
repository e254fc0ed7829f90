"""A moto S3 server in this process on a free port, counting the GET requests per object.

moto's own ``ThreadedMotoServer`` cannot tell us how often an object was read, which the cache
tests need ("two models with one artifact download it once"), so this builds the same werkzeug
server around moto's WSGI app with a small counting layer in front. Requests use path-style
URLs (``/bucket/key``), which is what the S3 fetcher sends to a custom endpoint.

``stall(bucket, key, after_bytes)`` holds every GET of one object after some bytes until the
block ends, so a test can act (kill the downloading process, start a second fetch) while a
download is provably in flight, without depending on how fast this machine is.

moto accepts any credentials by default. ``require_auth()`` switches on its IAM checks (through
moto's own ``/moto-api/reset-auth`` endpoint) so wrong keys get the real AWS error codes;
``iam_credentials()`` creates a user whose keys pass those checks.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import boto3
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from modelplane.libs.embedded_nats import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# moto's fake account accepts these when auth is off (the default).
DEFAULT_KEY_ID = "testing-key-id"
DEFAULT_SECRET = "testing-secret"
REGION = "us-east-1"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# Bytes per piece when a stalled response is re-chunked.
_PIECE = 64 * 1024
# Seconds a stalled response waits at most (a forgotten stall must not hang the test run).
_STALL_LIMIT_S = 120.0


class _QuietHandler(MotoRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class _CountingApp:
    """WSGI middleware: counts GETs by (bucket, key) before moto answers them."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.gets: Counter[tuple[str, str]] = Counter()
        # GETs that start reading an object from its first byte: one per download, even when
        # boto3 splits a large object into several ranged GETs.
        self.downloads: Counter[tuple[str, str]] = Counter()
        # Requests that carried no signature at all (anonymous access).
        self.unsigned = 0
        # (bucket, key) -> (bytes each response may send, set when it may send the rest).
        self.stalls: dict[tuple[str, str], tuple[int, threading.Event]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if "HTTP_AUTHORIZATION" not in environ and "X-Amz-Signature" not in environ.get("QUERY_STRING", ""):
            with self._lock:
                self.unsigned += 1
        stall = None
        if environ.get("REQUEST_METHOD") == "GET":
            bucket, _, key = unquote(environ.get("PATH_INFO", "")).lstrip("/").partition("/")
            if key:
                whole = environ.get("HTTP_RANGE", "bytes=0-").startswith("bytes=0-")
                with self._lock:
                    self.gets[(bucket, key)] += 1
                    self.downloads[(bucket, key)] += int(whole)
                    stall = self.stalls.get((bucket, key))
        body = self._app(environ, start_response)
        return body if stall is None else _stalled(body, *stall)


def _stalled(body: Iterable[bytes], allowed: int, release: threading.Event) -> Iterator[bytes]:
    """``body`` in small pieces, pausing after ``allowed`` bytes until ``release`` is set."""
    sent = 0
    try:
        for chunk in body:
            for start in range(0, len(chunk), _PIECE):
                piece = chunk[start : start + _PIECE]
                if sent + len(piece) > allowed:
                    release.wait(_STALL_LIMIT_S)
                sent += len(piece)
                yield piece
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


class S3Emulator:
    """One moto S3 server on 127.0.0.1:<free port>, started and stopped explicitly."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._counter = _CountingApp(DomainDispatcherApplication(create_backend_app))
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server = make_server(
            "127.0.0.1", self.port, self._counter, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-s3", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def get_count(self, bucket: str, key: str) -> int:
        """How many GET requests the object ``bucket/key`` received so far."""
        with self._counter._lock:
            return self._counter.gets[(bucket, key)]

    def download_count(self, bucket: str, key: str) -> int:
        """How many times ``bucket/key`` was read from its first byte (i.e. downloads started)."""
        with self._counter._lock:
            return self._counter.downloads[(bucket, key)]

    @contextmanager
    def stall(self, bucket: str, key: str, after_bytes: int) -> Iterator[None]:
        """Inside the block, each GET of ``bucket/key`` sends ``after_bytes`` bytes, then waits."""
        release = threading.Event()
        with self._counter._lock:
            self._counter.stalls[(bucket, key)] = (after_bytes, release)
        try:
            yield
        finally:
            with self._counter._lock:
                del self._counter.stalls[(bucket, key)]
            release.set()

    def unsigned_count(self) -> int:
        """How many requests arrived without any signature."""
        with self._counter._lock:
            return self._counter.unsigned

    def client(self, key_id: str = DEFAULT_KEY_ID, secret: str = DEFAULT_SECRET, service: str = "s3") -> Any:
        """A boto3 client for this emulator (for test setup: buckets, objects, IAM users)."""
        return boto3.session.Session(
            aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=REGION
        ).client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    def s3(self) -> S3Client:
        client: S3Client = self.client()
        return client

    def credentials(self) -> dict[str, str]:
        """Secret entries (environment-style) that point the S3 fetcher at this emulator."""
        return {
            "AWS_ACCESS_KEY_ID": DEFAULT_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DEFAULT_SECRET,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": REGION,
        }

    def iam_credentials(self, user: str) -> tuple[str, str]:
        """Create an IAM user allowed every S3 action; returns its (key id, secret)."""
        iam = self.client(service="iam")
        iam.create_user(UserName=user)
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName=user, PolicyName="s3-all", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return str(key["AccessKeyId"]), str(key["SecretAccessKey"])

    @contextmanager
    def require_auth(self) -> Iterator[None]:
        """Inside the block moto checks signatures and IAM policies like AWS does."""
        previous = self._reset_auth("0")
        try:
            yield
        finally:
            self._reset_auth(previous)

    def _reset_auth(self, count: str) -> str:
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth",
            data=count.encode(),
            method="POST",
            # Not form-encoded, or Flask consumes the body as a form and moto reads "".
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            return str(json.loads(resp.read())["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])


@contextmanager
def running_s3() -> Iterator[S3Emulator]:
    """A started emulator, stopped at the end."""
    emulator = S3Emulator()
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
