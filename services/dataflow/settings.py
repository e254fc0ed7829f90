"""Settings of a dataflow worker (environment variables ``MODELPLANE_DATAFLOW_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from modelplane.libs.dataplane.settings import DataPlaneSettings


class DataflowSettings(DataPlaneSettings):
    """How steps reach their models, and how many requests one worker runs at once.

    The inherited data-plane settings (retries, held requests, reloads, load signals, event
    loop) apply to step calls made by the worker itself (``step_calls`` = direct)."""

    model_config = SettingsConfigDict(
        env_prefix="MODELPLANE_DATAFLOW_", extra="ignore", validate_default=True
    )

    step_calls: Literal["direct", "gateway"] = Field(
        "direct",
        description=(
            "How a step calls its model. direct: the worker forwards the call itself with the"
            " gateway's own data-plane code (libs/dataplane: the same routes, balancing, held"
            " requests, retries, reloads, tracing and load signals), one hop less per step."
            " gateway: through the gateway process at gateway_url."
        ),
    )
    gateway_url: str = Field(
        "http://127.0.0.1:9000",
        description=(
            "Base URL of the gateway's V2 REST API: graph steps, and pipeline steps with"
            " step_calls = gateway, call their models there. https:// for a gateway served over"
            " TLS (`up --tls-cert`), trusting gateway_ca."
        ),
    )
    gateway_ca: Path | None = Field(
        None,
        description=(
            "CA bundle (PEM) trusted for an https:// gateway_url; `up --tls-cert` passes its"
            " certificate. Unset: the system's trust store."
        ),
    )
    gateway_token: SecretStr | None = Field(
        None,
        description=(
            "Bearer token (role inference) the worker sends with its calls through the gateway,"
            " for a gateway with MODELPLANE_GATEWAY_AUTH=required; `up` passes the worker its own."
            " Never logged."
        ),
    )
    max_concurrent_requests: int = Field(
        256,
        gt=0,
        description=(
            "Requests this worker runs at once. Each waits on model calls most of its time, so "
            "many fit one process; more workers share the stream's requests beyond that."
        ),
    )
    ack_wait_seconds: float = Field(
        30.0,
        gt=0,
        description=(
            "Seconds without a sign of life after which JetStream gives a request to another "
            "worker. A worker running a request signals every third of this, so only a dead "
            "worker's requests move."
        ),
    )
    max_deliver: int = Field(
        5,
        gt=0,
        description=(
            "Deliveries of one request at most. A request whose workers keep dying with it is "
            "answered with an error at its last delivery rather than passed on forever."
        ),
    )
    stream_max_age_seconds: float = Field(
        3600.0,
        gt=0,
        description=(
            "How long requests, answers and step records stay in the dataflow stream (for "
            "`pipeline inspect` and chained pipelines). Answered requests need nothing more."
        ),
    )
    stream_max_bytes: int = Field(
        1 << 30,
        gt=0,
        description="Size bound of the dataflow stream in bytes; the oldest messages go first.",
    )

    @model_validator(mode="after")
    def _ca_needs_tls(self) -> DataflowSettings:
        # A CA for a plaintext gateway is a mistake worth a start failure: the caller meant TLS.
        if self.gateway_ca is not None and not self.gateway_url.startswith("https://"):
            raise ValueError("gateway_ca is set but gateway_url is not an https:// URL")
        return self
