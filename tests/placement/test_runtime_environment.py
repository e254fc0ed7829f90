"""A model server process starts with a scrubbed environment: nothing of the agent's secrets leaks.

A real custom runtime (a Python one-liner that writes its environment to a file, then serves
HTTP so the readiness probe passes) is started by the agent's runtime code while the agent's own
environment is polluted with modelplane settings, NATS credentials and cloud keys.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from nats.js import JetStreamContext

from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.resources import defaults
from modelplane.services.placement.app import App as PlacementApp
from modelplane.services.placement.runtimes.custom import CustomRuntime
from modelplane.services.placement.runtimes.mlserver import MLServerRuntime
from modelplane.services.placement.types import ReplicaProfile
from modelplane.services.storage.app import App as StorageApp
from tests.placement.conftest import agent_settings, put_server

# Written to <cwd>/env.json, then an HTTP server on the given port (the readiness probe's target).
DUMP_ENV = (
    "import http.server, json, os, sys; "
    "json.dump(dict(os.environ), open('env.json', 'w')); "
    "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), http.server.BaseHTTPRequestHandler)"
    ".serve_forever()"
)
POLLUTION = {
    "MODELPLANE_NATS_URL": "nats://api:hunter2@127.0.0.1:4222",
    "MODELPLANE_NATS_CREDS": "/state/auth/placement.creds",
    "MODELPLANE_TOKEN": "mpt_secret_token_value",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
    "GOOGLE_APPLICATION_CREDENTIALS": "/state/secrets/gcp.json",
    "AZURE_STORAGE_ACCESS_KEY": "azure-secret-value",
    "HF_TOKEN": "hf_secret_value",
    "NATS_PASSWORD": "nats-secret",
}


async def test_a_custom_runtime_sees_no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Modelplane settings, NATS and cloud credentials are absent; PATH and the ServerConfig env are set."""
    for name, value in POLLUTION.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    port = free_port()
    profile = ReplicaProfile(
        server_config="dumper",
        runtime="custom",
        capabilities=(),
        memory_bytes=1,
        overcommit_percent=0,
        parallel_workers=1,
        command=(sys.executable, "-c", DUMP_ENV, "{http_port}"),
        env={"MY_SETTING": "from-the-server-config"},
    )
    runtime = CustomRuntime(
        profile,
        repo=tmp_path / "repo",
        state_dir=tmp_path,
        advertise_host="127.0.0.1",
        http_port=port,
        grpc_port=0,
    )

    async def ready() -> bool:
        try:
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/") as resp:
                return resp.status > 0
        except aiohttp.ClientError:
            return False

    await runtime.start(ready, timeout=30)
    try:
        seen = json.loads((tmp_path / "env.json").read_text())
    finally:
        await runtime.stop()
    leaked = {name for name in seen if name in POLLUTION or name.startswith("MODELPLANE_")}
    assert leaked == set()
    assert not any(value in json.dumps(seen) for value in POLLUTION.values())
    assert seen["PATH"]
    assert seen["LC_ALL"] == "C.UTF-8"
    assert seen["MY_SETTING"] == "from-the-server-config"


@pytest.fixture
async def polluted_mlserver_agent(
    nats_server: EmbeddedNats,
    js: JetStreamContext,
    storage: StorageApp,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[PlacementApp]:
    """An agent (with a real MLServer it launches) whose own environment holds credentials."""
    for name, value in POLLUTION.items():
        monkeypatch.setenv(name, value)
    # The agent itself reads MODELPLANE_NATS_CREDS: a real credentials file (this test's
    # nats-server has no users, so it accepts them; only where they end up matters).
    creds = tmp_path / "placement.creds"
    creds.write_text("placement:nats-secret-password\n")
    creds.chmod(0o600)
    monkeypatch.setenv("MODELPLANE_NATS_CREDS", str(creds))
    await put_server(js, defaults.default_server())
    app = PlacementApp(agent_settings(nats_server, tmp_path))
    await app.start()
    try:
        await app.wait_started()
        yield app
    finally:
        await app.close()


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode(errors="replace").split("\0") if "=" in entry)


async def test_mlserver_sees_no_credentials(polluted_mlserver_agent: PlacementApp) -> None:
    """The MLServer process the agent launched has none of the agent's credentials (/proc/<pid>/environ)."""
    runtime = polluted_mlserver_agent.runtime
    assert isinstance(runtime, MLServerRuntime)
    assert runtime.pid is not None
    seen = environ_of(runtime.pid)
    assert "MODELPLANE_NATS_CREDS" not in seen
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == POLLUTION["AWS_SECRET_ACCESS_KEY"]  # the agent has it
    assert {name for name in seen if name in POLLUTION or name.startswith("MODELPLANE_")} == set()
    assert seen["PATH"]
