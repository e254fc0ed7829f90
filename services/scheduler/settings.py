"""Scheduler settings (env prefix MODELPLANE_SCHEDULER_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from modelplane.libs.settings import CommonSettings


class SchedulerSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="MODELPLANE_SCHEDULER_", extra="ignore", validate_default=True
    )

    command_timeout: float = Field(
        5.0,
        gt=0,
        description=(
            "Seconds to wait for an agent's reply to a load/unload command. Agents reply at once "
            "(the work continues in the background), so 5 s only expires for a dead or stuck agent."
        ),
    )
    heartbeat_timeout: float = Field(
        6.0,
        gt=0,
        description=(
            "Seconds without a heartbeat after which a replica counts as gone and its models are "
            "rescheduled. Agents beat every 2 s, so 6 s tolerates two lost beats."
        ),
    )
    retry_interval: float = Field(
        5.0,
        gt=0,
        description=(
            "Seconds between retries of failed loads and unplaced models (they are also retried "
            "at once when capacity changes); 5 s keeps a broken model from hammering an agent."
        ),
    )
