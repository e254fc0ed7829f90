"""A static file server for tests: serves one directory on a free port and counts requests.

``http.server`` in a thread of this process, so tests can read the per-path request counts
directly. Paths under ``/private/`` answer 403, to exercise the "access denied" mapping.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from modelplane.libs.embedded_nats import free_port

PRIVATE_PREFIX = "/private/"


class _Handler(SimpleHTTPRequestHandler):
    counter: Counter[tuple[str, str]]
    lock: threading.Lock

    def _count(self) -> None:
        with self.lock:
            self.counter[(self.command, self.path)] += 1

    def do_GET(self) -> None:
        self._count()
        if self.path.startswith(PRIVATE_PREFIX):
            self.send_error(403)
            return
        super().do_GET()

    def do_HEAD(self) -> None:
        self._count()
        if self.path.startswith(PRIVATE_PREFIX):
            self.send_error(403)
            return
        super().do_HEAD()

    def log_message(self, format: str, *args: Any) -> None:
        return None


class FileServer:
    """Serves ``root`` at ``url`` until ``stop()``."""

    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        self.root = root
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self._lock = threading.Lock()
        self._counter: Counter[tuple[str, str]] = Counter()
        handler = type("CountingHandler", (_Handler,), {"counter": self._counter, "lock": self._lock})
        self._server = ThreadingHTTPServer((host, self.port), functools.partial(handler, directory=str(root)))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def count(self, path: str, method: str = "GET") -> int:
        """How many ``method`` requests ``path`` (e.g. "/model.tar.gz") received so far."""
        with self._lock:
            return self._counter[(method, path)]
