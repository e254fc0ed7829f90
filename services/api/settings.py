"""Settings of the api service (env prefix ``MODELPLANE_API_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from modelplane.libs.egress import DEFAULT_BLOCKED_NETWORKS, EgressPolicy, parse_networks
from modelplane.libs.local_paths import LocalRoots, default_roots, parse_roots
from modelplane.libs.resources.replica_cap import DEFAULT_MAX_SERVER_REPLICAS, MAX_SERVER_REPLICAS_ENV
from modelplane.libs.settings import CommonSettings


class ApiSettings(CommonSettings):
    """Where the control API listens."""

    model_config = SettingsConfigDict(env_prefix="MODELPLANE_API_", extra="ignore", validate_default=True)

    host: str = Field(
        "127.0.0.1",
        description=(
            "Interface both servers bind to. Loopback by default; every call needs a bearer token, "
            "so binding wider is safe, but serve TLS (tls_cert/tls_key) then: tokens travel in headers."
        ),
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
    max_body_bytes: int = Field(
        4 * 1024 * 1024,
        gt=0,
        description=(
            "Largest REST request body in bytes (413 beyond it). 4 MiB holds thousands of "
            "manifests; a bound stops one request from filling the api's memory."
        ),
    )
    max_grpc_message_bytes: int = Field(
        4 * 1024 * 1024,
        gt=0,
        description="Largest gRPC request message in bytes (RESOURCE_EXHAUSTED beyond it); grpc's own default, made explicit.",
    )
    tls_cert: Path | None = Field(
        None,
        description="PEM certificate chain: with tls_key, gRPC and REST are served over TLS only.",
    )
    tls_key: Path | None = Field(
        None,
        description="PEM private key of tls_cert (keep it 0600).",
    )

    state_dir: Path = Field(
        default=Path(".modelplane"),
        validation_alias=AliasChoices("MODELPLANE_STATE_DIR", "state_dir"),
        description=(
            "The local run's state directory (path; `modelplane up` sets MODELPLANE_STATE_DIR). A "
            "Model's local storageUri may not resolve into it (tokens, secrets, NATS store, cache) "
            "except under an allowed root inside it, such as <state dir>/models."
        ),
    )
    storage_local_roots: str = Field(
        default="",
        validation_alias=AliasChoices("MODELPLANE_STORAGE_LOCAL_ROOTS", "storage_local_roots"),
        description=(
            "Folders (os.pathsep- or comma-separated) that a Model's local or file:// storageUri "
            "may name, checked at apply time (the storage service reads the same variable and "
            "checks again at fetch time). Empty: the working directory and <state dir>/models."
        ),
    )
    storage_secrets_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("MODELPLANE_STORAGE_SECRETS_DIR", "storage_secrets_dir"),
        description=(
            "The storage service's secrets folder (path; `up` sets MODELPLANE_STORAGE_SECRETS_DIR), "
            "which no storageUri may name wherever it lives. None: only <state dir>/secrets, which "
            "is refused anyway."
        ),
    )

    storage_blocked_networks: str = Field(
        default=DEFAULT_BLOCKED_NETWORKS,
        validation_alias=AliasChoices("MODELPLANE_STORAGE_BLOCKED_NETWORKS", "storage_blocked_networks"),
        description=(
            "Networks (comma-separated CIDRs) remote fetches may not connect to; the api refuses "
            "an http(s) storageUri whose host is a literal IP in one of them at apply time (the "
            "storage service reads the same variable and checks resolved names at fetch time). "
            "Default: link-local, 0.0.0.0/8 and the cloud metadata addresses."
        ),
    )

    gateway_url: str = Field(
        default="http://127.0.0.1:9000",
        description=(
            "Base URL of the inference gateway as clients reach it; foreign kinds' statuses show "
            "it (an InferenceService's url, a SeldonDeployment's address.url)."
        ),
    )
    gateway_grpc: str = Field(
        default="127.0.0.1:9001", description="host:port of the gateway's gRPC endpoint, for statuses."
    )

    @field_validator("storage_blocked_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiSettings:
        if bool(self.tls_cert) != bool(self.tls_key):
            missing = "tls_key" if self.tls_cert else "tls_cert"
            raise ValueError(f"{missing} is required when the other TLS file is set")
        return self

    def local_storage_roots(self) -> LocalRoots:
        """The allowed roots, and the folders no local storageUri may reach."""
        roots = parse_roots(self.storage_local_roots) or default_roots(self.state_dir)
        secrets = [self.storage_secrets_dir] if self.storage_secrets_dir else []
        return LocalRoots.for_state(roots, self.state_dir, forbidden=secrets)

    def storage_egress_policy(self) -> EgressPolicy:
        """The networks a Model's http(s) storageUri may not name as a literal IP."""
        return EgressPolicy.parse(self.storage_blocked_networks)
