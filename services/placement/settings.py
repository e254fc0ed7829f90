"""Settings of the placement agent (env prefix ``MODELPLANE_PLACEMENT_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from modelplane.libs.resources.types import NAME_PATTERN
from modelplane.libs.settings import CommonSettings


class PlacementSettings(CommonSettings):
    """What ``modelplane run placement`` reads from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="MODELPLANE_PLACEMENT_", extra="ignore", validate_default=True
    )

    server: str = Field(
        default="mlserver",
        description="Name of the Server resource this replica belongs to; 'mlserver' is the default Server.",
    )
    index: int = Field(
        default=0, ge=0, description="Replica index within the Server (0-based); one agent per index."
    )
    state_dir: Path | None = Field(
        default=None,
        description=(
            "Directory (path) for the model repository, runtime settings and logs. Unset = "
            ".modelplane/replicas/<server>-<index> under the working directory, so replicas never share one."
        ),
    )
    launch: bool = Field(
        default=True,
        description=(
            "true: the agent starts the model server as its own child process (local runs). false: attach "
            "to a server already running at server_http_endpoint/server_grpc_endpoint (a Kubernetes sidecar)."
        ),
    )
    runtime_http_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="V2 REST port of a launched runtime; 0 = a free port (no clashes).",
    )
    runtime_grpc_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="V2 gRPC port of a launched runtime; 0 = a free port (no clashes).",
    )
    runtime_bind_host: str = Field(
        default="127.0.0.1",
        description="Interface a launched runtime listens on; loopback by default, 0.0.0.0 in a pod.",
    )
    advertise_host: str = Field(
        default="127.0.0.1",
        description="Host put in the registered endpoints (what the gateway dials); loopback for local runs.",
    )
    server_http_endpoint: str = Field(
        default="",
        description="host:port of an existing server's V2 REST API; only used when launch is false.",
    )
    server_grpc_endpoint: str = Field(
        default="",
        description="host:port of an existing server's V2 gRPC API; only used when launch is false.",
    )
    heartbeat_interval: float = Field(
        default=2.0,
        gt=0,
        description="Seconds between heartbeats; 2 s lets the scheduler notice a dead agent fast.",
    )
    fetch_timeout: float = Field(
        default=300.0,
        gt=0,
        description="Seconds to wait for the storage service to produce an artifact; large downloads take minutes.",
    )
    model_load_timeout: float = Field(
        default=300.0,
        gt=0,
        description="Seconds the model server may take to load one model before it counts as failed.",
    )
    runtime_start_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds for the runtime to become ready; MLServer takes ~4 s, slow disks more.",
    )
    drain_timeout: float = Field(
        default=30.0,
        ge=0,
        description=(
            "Seconds a replica told to stop (SIGTERM) keeps serving while the scheduler moves its "
            "models elsewhere; it exits sooner once none are left or no scheduler is active. 0 = no drain."
        ),
    )
    config_poll_interval: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between looks for a missing Server/ServerConfig in KV while the agent waits.",
    )

    @field_validator("server")
    @classmethod
    def _server_name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(f"server {value!r} is not a valid resource name")
        return value

    @model_validator(mode="after")
    def _attach_needs_endpoint(self) -> PlacementSettings:
        if not self.launch and not self.server_http_endpoint:
            raise ValueError("server_http_endpoint is required when launch is false")
        return self

    def resolved_state_dir(self) -> Path:
        base = self.state_dir or Path(".modelplane") / "replicas" / f"{self.server}-{self.index}"
        return base.expanduser().resolve()
