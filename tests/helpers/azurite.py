"""A real Azure Blob emulator (Azurite, from npm) on a free port, for tests.

Azurite is installed once per machine into a cache directory (``$MODELPLANE_TEST_AZURITE_DIR``,
default ``~/.cache/modelplane/azurite-<version>``; ~20 s the first time, then reused) under a file
lock so parallel sessions do not install twice. ``azurite_binary()`` raises
``AzuriteUnavailable`` naming what is missing (node, npm, or the install) so tests can skip.

Azurite checks Shared Key signatures, so a wrong account key really fails. Its well-known
development account and key are documented by Microsoft and are not secrets.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelplane.libs.embedded_nats import free_port
from tests.helpers.processes import stop_process_group

# azurite 3.35 is the newest that runs on node 20 (see /work/shared/reference/environment.md).
AZURITE_VERSION = "3.35.0"
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
INSTALL_TIMEOUT_S = 300.0
START_TIMEOUT_S = 30.0


class AzuriteUnavailable(Exception):
    """Azurite cannot run here; the message says what is missing."""


def azurite_binary() -> Path:
    """The azurite-blob launcher, installing Azurite from npm into the cache dir when needed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if path is None)
        raise AzuriteUnavailable(f"{missing} not found on PATH; Azurite needs node and npm")
    default = Path.home() / ".cache" / "modelplane" / f"azurite-{AZURITE_VERSION}"
    prefix = Path(os.environ.get("MODELPLANE_TEST_AZURITE_DIR", default))
    binary = prefix / "node_modules" / ".bin" / "azurite-blob"
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            _npm_install(npm, prefix)
    if not binary.exists():
        raise AzuriteUnavailable(f"npm install of azurite@{AZURITE_VERSION} produced no {binary}")
    return binary


def _npm_install(npm: str, prefix: Path) -> None:
    command = [
        npm,
        "install",
        "--prefix",
        str(prefix),
        "--no-audit",
        "--no-fund",
        f"azurite@{AZURITE_VERSION}",
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise AzuriteUnavailable(
            f"npm install azurite@{AZURITE_VERSION} took over {INSTALL_TIMEOUT_S} s"
        ) from None
    if result.returncode != 0:
        raise AzuriteUnavailable(
            f"npm install azurite@{AZURITE_VERSION} failed: {result.stderr.strip()[-500:]}"
        )


class Azurite:
    """One azurite-blob process with its data in ``workdir``."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.port = free_port()
        # The emulator's blob endpoint for the dev account (path style: host:port/<account>).
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.account_url = f"{self.endpoint}/{ACCOUNT}"
        self.connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.account_url};"
        )
        self._binary = binary
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        data = self._workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        command = [
            str(self._binary),
            *("--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", str(data)),
            *("--silent", "--skipApiVersionCheck", "--loose"),
        ]
        log_path = self._workdir / "azurite.log"
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._answers():
            if self._process.poll() is not None:
                raise AzuriteUnavailable(f"azurite-blob exited: {log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"azurite-blob not ready after {START_TIMEOUT_S} s")
            time.sleep(0.1)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process_group(process)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.account_url}?comp=list", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # 403 for an unsigned request: it is up
        except OSError:
            return False


@contextmanager
def running_azurite(workdir: Path) -> Iterator[Azurite]:
    azurite = Azurite(azurite_binary(), workdir)
    azurite.start()
    try:
        yield azurite
    finally:
        azurite.stop()
