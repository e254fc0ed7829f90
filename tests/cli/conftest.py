"""The api App in-process on free ports, and a way to run the CLI against it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.services.api.app import App
from modelplane.services.api.settings import ApiSettings
from tests.helpers.auth import ADMIN

from .harness import Cli


@pytest.fixture(autouse=True)
def _logs_off_stdout() -> Iterator[None]:
    """The in-process api logs to the stderr of pytest, not to the stdout CliRunner captures."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    yield
    structlog.reset_defaults()


@pytest.fixture
async def api_app(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[App]:
    # Any absolute path outside the (temporary) state dir may be a storageUri here: these tests
    # use paths such as /m; tests/api/test_storage_admission.py checks the default roots.
    settings = ApiSettings(
        nats_url=nats_server.url,
        grpc_port=0,
        http_port=0,
        storage_local_roots="/",
        state_dir=tmp_path / "state",
    )
    app = App(settings)  # port 0: the OS picks
    await app.start()
    try:
        yield app
    finally:
        await app.close()


@pytest.fixture
async def admin_token(api_app: App) -> str:
    _, token = await api_app.handler.create_token(ADMIN, "admin", "test-admin")
    return token


@pytest.fixture
def run_cli(api_app: App, admin_token: str) -> Cli:
    return Cli(api_app.grpc_address, admin_token)
