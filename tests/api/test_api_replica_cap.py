"""The api refuses a Server without maxReplicas that asks for more replicas than the cap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.libs.resources.replica_cap import DEFAULT_MAX_SERVER_REPLICAS, MAX_SERVER_REPLICAS_ENV
from modelplane.services.api.handler import ControlHandler
from modelplane.services.api.settings import ApiSettings
from tests.helpers.auth import ADMIN


def server(replicas: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.io/v1alpha1",
        "kind": "Server",
        "metadata": {"name": "big"},
        "spec": {"serverConfig": "mlserver", "replicas": replicas, **spec},
    }


@pytest.fixture
async def handler(js: JetStreamContext, nc: NATS) -> AsyncIterator[ControlHandler]:
    handler = await ControlHandler.open(js, nc, max_server_replicas=8)
    yield handler
    await handler.close()


async def test_300_replicas_without_max_replicas_are_refused_naming_the_field(
    handler: ControlHandler,
) -> None:
    """replicas: 300 is InvalidError on spec.replicas, saying the cap and how to lift it; nothing is stored."""
    with pytest.raises(InvalidError) as caught:
        await handler.apply_manifest(ADMIN, server(300))
    assert caught.value.field == "spec.replicas"
    assert "limit of 8" in caught.value.message
    assert "maxReplicas" in caught.value.message
    with pytest.raises(NotFoundError):
        await handler.get(ADMIN, "Server", "big")


async def test_the_cap_itself_and_an_explicit_max_replicas_are_accepted(handler: ControlHandler) -> None:
    """Up to the cap is fine; a Server that sets maxReplicas chose its own bound."""
    _, outcome = await handler.apply_manifest(ADMIN, server(8))
    assert outcome == "created"
    _, outcome = await handler.apply_manifest(ADMIN, server(12, maxReplicas=12))
    assert outcome == "configured"


async def test_scaling_past_the_cap_is_refused(handler: ControlHandler) -> None:
    """``scale`` (what the autoscaler and `modelplane scale` use) keeps the same bound."""
    await handler.apply_manifest(ADMIN, server(1))
    with pytest.raises(InvalidError) as caught:
        await handler.scale(ADMIN, "Server", "big", 300)
    assert caught.value.field == "spec.replicas"
    stored = await handler.get(ADMIN, "Server", "big")
    assert stored.spec.replicas == 1  # type: ignore[union-attr]


def test_the_api_reads_the_schedulers_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """One variable sets the cap for the api and the scheduler alike."""
    assert ApiSettings().max_server_replicas == DEFAULT_MAX_SERVER_REPLICAS
    monkeypatch.setenv(MAX_SERVER_REPLICAS_ENV, "3")
    assert ApiSettings().max_server_replicas == 3
