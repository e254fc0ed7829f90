"""Status service settings (env prefix MODELPLANE_STATUS_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from modelplane.libs.settings import CommonSettings


class StatusSettings(CommonSettings):
    """Only the common fields so far (NATS URL, log level, shutdown timeout)."""

    model_config = SettingsConfigDict(env_prefix="MODELPLANE_STATUS_", extra="ignore", validate_default=True)
