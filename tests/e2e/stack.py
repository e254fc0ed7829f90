"""Drive a real `modelplane up` process and the real `modelplane` CLI from tests.

Everything runs on free ports with a temp state directory; the stack is stopped by its own pid
with SIGINT (what Ctrl-C sends), and killed with its process group only if it hangs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modelplane.libs.auth.files import admin_token_path
from modelplane.libs.embedded_nats import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class Ports:
    nats: int = field(default_factory=free_port)
    api_grpc: int = field(default_factory=free_port)
    api_http: int = field(default_factory=free_port)
    gateway_http: int = field(default_factory=free_port)
    gateway_grpc: int = field(default_factory=free_port)
    autoscaler_metrics: int = field(default_factory=free_port)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


class UpProcess:
    """One `modelplane up` run in the background."""

    def __init__(
        self,
        state_dir: Path,
        ports: Ports,
        log_path: Path,
        cwd: Path = REPO,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.ports = ports
        self.log_path = log_path
        self.cwd = cwd
        # Settings for the stack's processes (e.g. MODELPLANE_AUTOSCALER_INTERVAL_SECONDS): `up`
        # gets them in its environment and its children inherit them.
        self.extra_env = dict(extra_env or {})
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for CLI calls that talk to this stack."""
        return {
            **os.environ,
            "MODELPLANE_API_ADDRESS": f"127.0.0.1:{self.ports.api_grpc}",
            "MODELPLANE_GATEWAY_URL": f"http://127.0.0.1:{self.ports.gateway_http}",
            # The CLI finds the admin token `up` wrote there, as a user's CLI does.
            "MODELPLANE_STATE_DIR": str(self.state_dir),
        }

    @property
    def admin_token(self) -> str:
        """The admin token `up` keeps in the state dir (for clients made in the test itself)."""
        return admin_token_path(self.state_dir).read_text().strip()

    def start(self) -> None:
        p = self.ports
        args = [
            str(BIN / "modelplane"), "up",
            "--state-dir", str(self.state_dir),
            "--nats-port", str(p.nats),
            "--api-port", str(p.api_grpc),
            "--api-http-port", str(p.api_http),
            "--gateway-port", str(p.gateway_http),
            "--gateway-grpc-port", str(p.gateway_grpc),
            "--autoscaler-metrics-port", str(p.autoscaler_metrics),
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                args, cwd=self.cwd, env=env, stdout=log, stderr=log, start_new_session=True
            )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the default server has a registered replica (so models can be placed)."""
        deadline = time.monotonic() + timeout
        last: CliResult | subprocess.TimeoutExpired | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                last = self.cli("server", "status", "mlserver", "-o", "json", timeout=10)
            except subprocess.TimeoutExpired as exc:  # a busy machine: ask again until the deadline
                last = exc
                continue
            if last.code == 0 and '"ServerReady"' in last.out:
                return
            time.sleep(0.5)
        raise AssertionError(f"stack not ready in {timeout}s; last: {last}\n{self.log_tail()}")

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise AssertionError(f"modelplane up exited with {self._proc.returncode}\n{self.log_tail()}")

    def cli(self, *args: str, timeout: float = 60.0) -> CliResult:
        done = subprocess.run(
            [str(BIN / "modelplane"), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 60.0) -> int:
        """Ctrl-C the stack and wait for it to finish its ordered shutdown."""
        proc, self._proc = self._proc, None
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise AssertionError(
                    f"modelplane up did not stop within {timeout}s\n{self.log_tail()}"
                ) from None
        return proc.returncode


def nats_permission_violations(state_dir: Path) -> list[str]:
    """Lines of the embedded nats-server's log where a user was denied a subject: a normal run
    has none (each service's user may do exactly what the service needs)."""
    try:
        text = (state_dir / "logs" / "nats.log").read_text(errors="replace")
    except OSError:
        return []
    # nats-server logs '... - "$G/user:gateway" - Publish Violation - Subject "..."' (or
    # Subscription Violation); refused logins are "authentication error" lines instead.
    return [line for line in text.splitlines() if "Violation" in line]


def wait_until(predicate: object, timeout: float, what: str, interval: float = 0.25) -> None:
    """Poll ``predicate()`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
