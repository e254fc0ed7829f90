"""Settings of the autoscaler (environment variables ``MODELPLANE_AUTOSCALER_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from modelplane.libs.settings import CommonSettings


class AutoscalerSettings(CommonSettings):
    """How often models are sized, over which window, and where the api is."""

    model_config = SettingsConfigDict(
        env_prefix="MODELPLANE_AUTOSCALER_", extra="ignore", validate_default=True
    )

    api_address: str = Field(
        "127.0.0.1:9004",
        description=(
            "gRPC address of the api. Replica changes are applied through it, like a user's, so"
            " they are validated, versioned and announced as any change of desired state."
        ),
    )
    api_token: SecretStr | None = Field(
        None,
        description=(
            "Bearer token for the api's Scale (it scales Servers too, so an admin token). "
            "`modelplane up` makes a fresh one at each start and passes it here."
        ),
    )
    api_ca: Path | None = Field(
        None,
        description="CA bundle (PEM) of an api served over TLS; unset: plaintext gRPC.",
    )
    interval_seconds: float = Field(
        10.0,
        gt=0,
        description="Seconds between two sizing decisions per model (KubeAI's default, 10 s).",
    )
    window_seconds: float = Field(
        600.0,
        gt=0,
        description=(
            "Length of the moving average of each model's load (KubeAI's default, 10 min): longer"
            " rides out bursts, shorter follows load sooner."
        ),
    )
    stale_after_seconds: float = Field(
        5.0,
        gt=0,
        description=(
            "Seconds after which a gateway's or worker's last load sample no longer counts (it"
            " stopped reporting: no requests in flight there). Gateways report every second."
        ),
    )
    lease_ttl: float = Field(
        5.0,
        gt=0,
        description=(
            "Seconds a standby autoscaler waits after the leader's last renewal before it takes"
            " over (one instance decides; two would apply every change twice)."
        ),
    )
    lease_renew_interval: float = Field(
        1.0,
        gt=0,
        description="Seconds between the leader's lease renewals (at most half of lease_ttl * 3/4).",
    )
    server_scaling: bool = Field(
        True,
        description=(
            "Act on the scheduler's server scale requests (Seldon semantics): set a Server's"
            " replicas within its minReplicas/maxReplicas. Off: the requests stay visible in"
            " `server status` and an operator acts on them."
        ),
    )
    server_packing: bool = Field(
        False,
        description=(
            "Also shrink a Server whose models fit on fewer replicas (consolidation), not only"
            " when replicas are empty. Off by default: moving a model reloads it elsewhere."
        ),
    )
    host: str = Field("127.0.0.1", description="Interface the /metrics endpoint listens on.")
    metrics_port: int = Field(
        9010,
        ge=0,
        description="Port of the autoscaler's Prometheus /metrics endpoint (0: any free port).",
    )
