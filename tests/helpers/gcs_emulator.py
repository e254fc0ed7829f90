"""A real Google Cloud Storage emulator (gcp-storage-emulator) on a free port, for tests.

It speaks the GCS JSON API the SDK uses; it does not check credentials. Started as a child
process in its own session (so it is stopped by its pid with everything it spawned), in memory.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelplane.libs.embedded_nats import free_port
from tests.helpers.processes import stop_process_group

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*grpcio-status.*", category=ImportWarning)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage  # type: ignore[import-untyped]

START_TIMEOUT_S = 20.0


class GcsEmulator:
    """One gcp-storage-emulator process; ``url`` is its STORAGE_EMULATOR_HOST value."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_dir / "gcs-emulator.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = Path(sys.executable).parent / "gcp-storage-emulator"
        command = [str(binary), "start", "--host", "127.0.0.1", "--port", str(self.port), "--in-memory"]
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._answers():
            if self._process.poll() is not None:
                raise RuntimeError(f"gcp-storage-emulator exited: {self._log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gcp-storage-emulator not ready after {START_TIMEOUT_S} s")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process_group(process)

    def client(self) -> storage.Client:
        """An admin client to create buckets and upload objects in tests."""
        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.url},
        )

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False


@contextmanager
def running_gcs_emulator(log_dir: Path) -> Iterator[GcsEmulator]:
    emulator = GcsEmulator(log_dir)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()
