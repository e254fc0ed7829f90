"""Gateway settings come from MODELPLANE_GATEWAY_* with safe defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelplane.services.gateway.app import App, create
from modelplane.services.gateway.settings import GatewaySettings


def test_defaults_match_seldon_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without variables the gateway listens on loopback 9000 (REST) and 9001 (gRPC)."""
    for var in ("MODELPLANE_GATEWAY_HTTP_PORT", "MODELPLANE_GATEWAY_GRPC_PORT", "MODELPLANE_GATEWAY_HOST"):
        monkeypatch.delenv(var, raising=False)
    settings = GatewaySettings()
    assert (settings.host, settings.http_port, settings.grpc_port) == ("127.0.0.1", 9000, 9001)


def test_create_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """create() builds an App from MODELPLANE_GATEWAY_* and MODELPLANE_NATS_URL."""
    monkeypatch.setenv("MODELPLANE_GATEWAY_HTTP_PORT", "18000")
    monkeypatch.setenv("MODELPLANE_GATEWAY_RETRIES", "5")
    monkeypatch.setenv("MODELPLANE_NATS_URL", "nats://127.0.0.1:1")
    app = create()
    assert isinstance(app, App)
    assert app.settings.http_port == 18000
    assert app.settings.retries == 5
    assert app.settings.nats_url == "nats://127.0.0.1:1"


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A negative retry count or zero timeout fails at start, naming the field."""
    monkeypatch.setenv("MODELPLANE_GATEWAY_RETRIES", "-1")
    with pytest.raises(ValidationError, match="retries"):
        GatewaySettings()


async def test_close_without_start_is_a_no_op() -> None:
    """close() is safe before start() and when called twice."""
    app = create()
    await app.close()
    await app.close()
