"""Settings of the api service (env prefix ``MODELPLANE_API_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from modelplane.libs.local_paths import LocalRoots, default_roots, parse_roots
from modelplane.libs.settings import CommonSettings


class ApiSettings(CommonSettings):
    """Where the control API listens."""

    model_config = SettingsConfigDict(env_prefix="MODELPLANE_API_", extra="ignore", validate_default=True)

    host: str = Field(
        "127.0.0.1",
        description="Interface both servers bind to. Loopback by default: the API has no auth yet.",
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

    def local_storage_roots(self) -> LocalRoots:
        """The allowed roots, and the folders no local storageUri may reach."""
        roots = parse_roots(self.storage_local_roots) or default_roots(self.state_dir)
        secrets = [self.storage_secrets_dir] if self.storage_secrets_dir else []
        return LocalRoots.for_state(roots, self.state_dir, forbidden=secrets)
