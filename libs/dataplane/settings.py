"""Settings every process forwarding inference requests shares (the gateway and the dataflow
workers): how replicas are called, retried, waited for and reported on. Each process's own
settings class subclasses this one with its environment prefix."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import Field

from modelplane.libs.settings import CommonSettings


class DataPlaneSettings(CommonSettings):
    """How requests are forwarded to model replicas."""

    upstream_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description=(
            "Seconds one forwarded call to a replica may take before the client gets 504 /"
            " DEADLINE_EXCEEDED; 60 s leaves room for large batches on CPU."
        ),
    )

    retries: int = Field(
        3,
        ge=0,
        description=(
            "Extra attempts, each on a freshly picked replica, when a replica cannot be reached or"
            " answers 502/503/504 (never after a model answered, and never on 4xx or 500); 3 as"
            " Envoy's default retry policy for Seldon."
        ),
    )

    reload_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description=(
            "Seconds a request waits for a replica's agent to reload a model it evicted to make"
            " room (overcommit) before the replica's own 404 / NOT_FOUND goes back; a reload"
            " reads the model from the agent's local copy, usually seconds."
        ),
    )

    usage_report_interval: float = Field(
        1.0,
        gt=0,
        description=(
            "Seconds between the reports telling each replica's agent which of its models served"
            " requests (so it evicts the least recently used); one small message per busy replica."
        ),
    )

    hold_seconds: float = Field(
        60.0,
        ge=0,
        description=(
            "Seconds a request for a known model with no ready replica (scaled to zero, loading)"
            " waits for one before 503 / UNAVAILABLE with Retry-After; 60 s covers loading a"
            " model from the local cache. 0 answers at once."
        ),
    )

    max_held_per_model: int = Field(
        1000,
        ge=0,
        description=(
            "Requests per model that may wait for a ready replica at once; beyond it they get"
            " 503 at once, so a model that never comes up cannot pile up unbounded work."
        ),
    )

    load_report_interval: float = Field(
        1.0,
        gt=0,
        description=(
            "Seconds between the per-model load signals (in flight, held, rate, latency) published"
            " on NATS for the autoscaler; 1 s follows bursts without flooding NATS."
        ),
    )

    instance_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        min_length=1,
        description="Name of this process in its load signals (several gateways and dataflow workers each report their share).",
    )

    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        description=(
            "Event loop of the process: uvloop (libuv, installed with MLServer) spends less CPU per"
            " forwarded request than asyncio, the standard library's loop; compare with"
            " `python -m bench.gateway --gateway-env MODELPLANE_GATEWAY_EVENT_LOOP=asyncio`."
        ),
    )
