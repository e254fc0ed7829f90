"""Scheduler settings (env prefix MODELPLANE_SCHEDULER_)."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from modelplane.libs.resources.replica_cap import DEFAULT_MAX_SERVER_REPLICAS, MAX_SERVER_REPLICAS_ENV
from modelplane.libs.settings import CommonSettings


class SchedulerSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="MODELPLANE_SCHEDULER_", extra="ignore", validate_default=True
    )

    max_server_replicas: int = Field(
        DEFAULT_MAX_SERVER_REPLICAS,
        gt=0,
        validation_alias=AliasChoices(MAX_SERVER_REPLICAS_ENV, "max_server_replicas"),
        description=(
            "Most replicas of a Server that sets no maxReplicas: the scheduler asks for no more,"
            " the api refuses more and `up` starts no more (they all read this variable). 8 suits"
            " a laptop; a Server's own maxReplicas overrides it."
        ),
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
        0.5,
        gt=0,
        description=(
            "Seconds between checks for models whose retry backoff has expired (failed loads, "
            "unplaced or under-replicated models; capacity changes retry them at once). 0.5 s is "
            "the resolution of the backoff below and costs one pass over the model table."
        ),
    )
    retry_backoff_initial: float = Field(
        1.0,
        gt=0,
        description=(
            "Seconds before the first periodic retry of a failed model; doubled after each retry. "
            "1 s recovers a transient failure quickly."
        ),
    )
    retry_backoff_max: float = Field(
        60.0,
        gt=0,
        description=(
            "Upper bound in seconds of a model's retry backoff (reset once the model is healthy); "
            "60 s keeps a broken model from hammering an agent while still retrying every minute."
        ),
    )
    server_strategy: Literal["best-fit", "spread"] = Field(
        "best-fit",
        description=(
            "How the scheduler chooses among servers that can all take a model: best-fit packs "
            "(the server left with the least free memory first) so large models still find room; "
            "spread prefers the emptiest server. Ties go to the server name: never random."
        ),
    )
    lease_ttl: float = Field(
        5.0,
        gt=0,
        description=(
            "Seconds a standby waits, after the leader's last lease renewal it saw, before it takes "
            "over. 5 s keeps a kill -9 takeover within a few seconds while tolerating a slow NATS; "
            "the leader itself stops acting at 3/4 of it when it cannot renew."
        ),
    )
    lease_renew_interval: float = Field(
        1.0,
        gt=0,
        description=(
            "Seconds between lease renewals by the leader (and polls by a standby); at most 3/8 of "
            "lease_ttl so at least two renewals fit before the leader would step down."
        ),
    )
    instance_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        min_length=1,
        description=(
            "Name of this instance in the leader lease and the logs. Default hostname-pid-random, "
            "unique per process so a restarted instance never mistakes the old lease for its own."
        ),
    )

    gc_young_threshold: int = Field(
        default=50_000,
        ge=0,
        description=(
            "Net allocations of tracked objects between young garbage collections (CPython's "
            "default is 700). The scheduler keeps a large, long-lived heap (a record per model); "
            "at the default, collections that walk all of it took about a tenth of placement "
            "time. 0 keeps the interpreter's setting."
        ),
    )

    @model_validator(mode="after")
    def _backoff_bounds(self) -> SchedulerSettings:
        if self.retry_backoff_max < self.retry_backoff_initial:
            raise ValueError("retry_backoff_max must be >= retry_backoff_initial")
        return self
