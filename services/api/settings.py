"""Settings of the api service (env prefix ``MODELPLANE_API_``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from modelplane.libs.resources.replica_cap import DEFAULT_MAX_SERVER_REPLICAS, MAX_SERVER_REPLICAS_ENV
from modelplane.libs.settings import CommonSettings


class ApiSettings(CommonSettings):
    """Where the control API listens."""

    model_config = SettingsConfigDict(env_prefix="MODELPLANE_API_", extra="ignore", validate_default=True)

    host: str = Field(
        "127.0.0.1",
        description="Interface both servers bind to. Loopback by default: the API has no auth yet.",
    )
    max_server_replicas: int = Field(
        DEFAULT_MAX_SERVER_REPLICAS,
        gt=0,
        validation_alias=AliasChoices(MAX_SERVER_REPLICAS_ENV, "max_server_replicas"),
        description=(
            "Most replicas of a Server that sets no maxReplicas; more is refused naming"
            " spec.replicas. The scheduler's variable, so that one value holds everywhere."
        ),
    )
    grpc_port: int = Field(
        9004,
        ge=0,
        le=65535,
        description="TCP port of the gRPC ControlService (the CLI's default); 9004 is Seldon's scheduler port.",
    )
    http_port: int = Field(
        9080,
        ge=0,
        le=65535,
        description="TCP port of the REST API (/v1/...); 9080 stays clear of the gateway's 9000.",
    )
