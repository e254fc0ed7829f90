"""Settings shared by every service. Each service has its own pydantic-settings class with the
env prefix ``MODELPLANE_<SERVICE>_``; the fields here are common and read from ``MODELPLANE_*``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


class CommonSettings(BaseSettings):
    """Fields every service reads; subclass and set ``env_prefix`` for the service's own."""

    model_config = SettingsConfigDict(env_prefix="MODELPLANE_", extra="ignore", validate_default=True)

    nats_url: str = Field(
        DEFAULT_NATS_URL,
        validation_alias=AliasChoices("MODELPLANE_NATS_URL", "nats_url"),
        description="NATS server to use (JetStream on). `modelplane up` sets it to its embedded server.",
    )
    nats_creds: Path | None = Field(
        None,
        validation_alias=AliasChoices("MODELPLANE_NATS_CREDS", "nats_creds"),
        description=(
            "File with this process's NATS credentials (not readable by other users): a NATS "
            ".creds file, or a 'user:password' line (see libs/nats_credentials.py). "
            "`modelplane up` gives each service its own; unset means an anonymous connection."
        ),
    )
    log_level: str = Field(
        "info",
        validation_alias=AliasChoices("MODELPLANE_LOG_LEVEL", "log_level"),
        description="debug | info | warning | error.",
    )
    shutdown_timeout: float = Field(
        10.0,
        validation_alias=AliasChoices("MODELPLANE_SHUTDOWN_TIMEOUT", "shutdown_timeout"),
        description="Seconds a service drains in-flight work on SIGTERM before it cancels it.",
        gt=0,
    )
