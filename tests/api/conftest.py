"""The api App started in-process against the test's nats-server, on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.services.api.app import App
from modelplane.services.api.settings import ApiSettings


@pytest.fixture
async def api_app(nats_server: EmbeddedNats) -> AsyncIterator[App]:
    app = App(ApiSettings(nats_url=nats_server.url, grpc_port=0, http_port=0))  # port 0: the OS picks
    await app.start()
    try:
        yield app
    finally:
        await app.close()
