"""Secrets never leak: a whole `modelplane up` run with known secret values, then every log,
status and event is searched for them.

The run uses three kinds of secret at once: a model's secret (an IAM key pair in the S3
emulator, with signatures checked), a NATS URL with a password (an external nats-server that
requires it, so every service really uses it), and an S3 presigned URL as a model's storageUri
(its signature is a bearer credential). Both models load and answer; then the values must appear
in no log file, no status (`model status -o json`, `model list`) and no event on
``modelplane.events.>`` seen during the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import nats
import pytest
from nats.aio.msg import Msg

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import find_nats_server, free_port
from tests.e2e.stack import Ports, UpProcess, wait_until
from tests.e2e.test_scheduling import infer, status
from tests.helpers.iris import build_iris_model
from tests.helpers.processes import stop_process_group
from tests.helpers.s3_emulator import S3Emulator, running_s3

NATS_USER = "modelplane"
# Distinctive values: found anywhere, they can only have come from the secret.
NATS_PASSWORD = "natspw-" + secrets.token_hex(12)


class EventRecorder:
    """Subscribes to every thin event in a thread of its own; keeps the raw payloads."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.payloads: list[bytes] = []
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(20), "event recorder did not connect"

    def stop(self) -> None:
        stop = self._stop
        if stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(stop.set)
            self._thread.join(20)

    def _run(self) -> None:
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        nc = await nats.connect(self._url)
        try:

            async def record(msg: Msg) -> None:
                self.payloads.append(msg.subject.encode() + b" " + msg.data)

            await nc.subscribe(subjects.ALL_EVENTS, cb=record)
            await nc.flush()
            self._ready.set()
            await self._stop.wait()
        finally:
            await nc.close()


@pytest.fixture
def external_nats(tmp_path: Path) -> Iterator[str]:
    """A nats-server that accepts only NATS_USER with NATS_PASSWORD; yields its URL with them."""
    port = free_port()
    conf = tmp_path / "nats-ext.conf"
    conf.write_text(
        f'authorization {{ user: "{NATS_USER}", password: "{NATS_PASSWORD}" }}\n'
        f'jetstream {{ store_dir: "{tmp_path / "nats-ext"}" }}\n'
    )
    conf.chmod(0o600)
    proc = subprocess.Popen(
        [find_nats_server(), "-a", "127.0.0.1", "-p", str(port), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield f"nats://{NATS_USER}:{NATS_PASSWORD}@127.0.0.1:{port}"
    finally:
        stop_process_group(proc)


def _archive(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            tar.add(file, arcname=file.relative_to(folder).as_posix())
    return target


def _model(name: str, uri: str, secret: str = "") -> str:
    lines = [
        "apiVersion: mlops.seldon.io/v1alpha1",
        "kind: Model",
        f"metadata: {{name: {name}}}",
        "spec:",
        f"  storageUri: {json.dumps(uri)}",
        "  requirements: [sklearn]",
    ]
    if secret:
        lines.append(f"  secretName: {secret}")
    return "\n".join(lines) + "\n"


def test_secret_values_appear_in_no_log_status_or_event(tmp_path: Path, external_nats: str) -> None:
    """A model secret, a NATS password and a presigned URL's signature: none is ever shown."""
    with running_s3() as s3:
        _run(tmp_path, external_nats, s3)


def _run(tmp_path: Path, nats_url: str, s3: S3Emulator) -> None:
    iris = build_iris_model(tmp_path / "iris")
    admin = s3.s3()
    admin.create_bucket(Bucket="models")
    for file in sorted(p for p in iris.path.rglob("*") if p.is_file()):
        admin.upload_file(str(file), "models", f"iris/{file.relative_to(iris.path).as_posix()}")
    admin.upload_file(str(_archive(iris.path, tmp_path / "iris.tar.gz")), "models", "archives/iris.tar.gz")
    key_id, secret_key = s3.iam_credentials("loader")
    # Signed by the IAM user: the emulator checks signatures during the run.
    presigned = s3.client(key_id, secret_key).generate_presigned_url(
        "get_object", Params={"Bucket": "models", "Key": "archives/iris.tar.gz"}, ExpiresIn=3600
    )
    query = parse_qs(urlsplit(presigned).query)
    signature = (query.get("X-Amz-Signature") or query["Signature"])[0]

    stack = UpProcess(
        tmp_path / "state", Ports(), tmp_path / "up.log", extra_env={"MODELPLANE_NATS_URL": nats_url}
    )
    events = EventRecorder(nats_url)
    stack.start()
    try:
        stack.wait_ready()
        events.start()
        secrets_dir = stack.state_dir / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True)
        creds = {**s3.credentials(), "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret_key}
        (secrets_dir / "s3-loader.env").write_text("".join(f"{k}={v}\n" for k, v in creds.items()))
        # moto cannot check a presigned URL's signature (it fails on query-string auth), so
        # that model loads with signature checks off; the secret's keys are checked.
        for name, manifest_text, auth in (
            ("iris-presigned", _model("iris-presigned", presigned), contextlib.nullcontext()),
            ("iris-secret", _model("iris-secret", "s3://models/iris", "s3-loader"), s3.require_auth()),
        ):
            manifest = tmp_path / f"{name}.yaml"
            manifest.write_text(manifest_text)
            with auth:
                done = stack.cli("apply", "-f", str(manifest))
                assert done.code == 0, done
                wait_until(
                    lambda n=name: status(stack, "model", n).get("state") == "ModelAvailable",
                    120,
                    f"{name} Available",
                )
                assert infer(stack, name, iris) == iris.expected[:3].tolist()
        shown = [
            json.dumps(status(stack, "model", "iris-secret")),
            json.dumps(status(stack, "model", "iris-presigned")),
            stack.cli("model", "list").out,
        ]
    finally:
        events.stop()
        stack.stop()
    # `up` relays its services' lines into its own output; model servers and NATS log to files.
    logs = {str(p): p.read_text(errors="replace") for p in stack.state_dir.rglob("*.log") if p.is_file()}
    logs["up.log"] = stack.log_path.read_text(errors="replace")
    assert events.payloads, "no event was recorded: the recorder saw nothing"
    for service in ("api", "storage", "gateway", "placement"):
        assert f'"service": "{service}"' in logs["up.log"], f"no {service} log lines in up's output"
    haystacks = {
        **{f"log {name}": text for name, text in logs.items()},
        **{f"status {i}": text for i, text in enumerate(shown)},
        "events": b"\n".join(events.payloads).decode(errors="replace"),
    }
    for label, value in (
        ("model secret", secret_key),
        ("NATS password", NATS_PASSWORD),
        ("presigned URL signature", signature),
    ):
        found = [where for where, text in haystacks.items() if value in text]
        assert not found, f"the {label} appears in {found}"
