"""The api App started in-process against the test's nats-server, on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.services.api.app import App
from modelplane.services.api.settings import ApiSettings
from tests.helpers.auth import ADMIN


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
    """An admin token the api knows at once (created through its own handler)."""
    _, token = await api_app.handler.create_token(ADMIN, "admin", "test-admin")
    return token
