"""Status service settings (env prefix MODELPLANE_STATUS_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from modelplane.libs.settings import CommonSettings


class StatusSettings(CommonSettings):
    """The common fields (NATS URL, log level, shutdown timeout) and the progress throttle."""

    model_config = SettingsConfigDict(env_prefix="MODELPLANE_STATUS_", extra="ignore", validate_default=True)

    progress_interval: float = Field(
        0.5,
        description=(
            "Seconds between two status writes of one model while its artifact downloads. The "
            "storage service reports every 0.5 s; 0.5 s keeps `model status` current with at most "
            "two KV writes per second per downloading model. Phase changes are written at once."
        ),
        gt=0,
    )
