"""Settings of the gateway process (environment variables ``MODELPLANE_GATEWAY_*``)."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from modelplane.libs.settings import CommonSettings


class GatewaySettings(CommonSettings):
    """Where the gateway listens and how it talks to model replicas."""

    model_config = SettingsConfigDict(env_prefix="MODELPLANE_GATEWAY_", extra="ignore", validate_default=True)

    host: str = Field(
        "127.0.0.1",
        description="Interface both servers bind to; loopback by default so a laptop exposes nothing.",
    )
    http_port: int = Field(
        9000,
        ge=0,
        le=65535,
        description="TCP port of the V2 REST API and /metrics; 9000 is Seldon's inference port.",
    )
    grpc_port: int = Field(
        9001,
        ge=0,
        le=65535,
        description="TCP port of the V2 gRPC API (inference.GRPCInferenceService); Seldon uses 9001.",
    )
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
    max_request_bytes: int = Field(
        100 * 1024 * 1024,
        gt=0,
        description=(
            "Largest REST request body in bytes (and gRPC message); 100 MiB fits image batches"
            " while bounding memory per request."
        ),
    )
    grpc_grace_seconds: float = Field(
        5.0,
        ge=0,
        description=(
            "Seconds in-flight REST and gRPC calls may finish at shutdown before they are cancelled."
        ),
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        description=(
            "Event loop of `modelplane run gateway`: uvloop (libuv, installed with MLServer) spends"
            " less CPU per proxied request than asyncio, the standard library's loop; compare with"
            " `python -m bench.gateway --gateway-env MODELPLANE_GATEWAY_EVENT_LOOP=asyncio`."
        ),
    )
    gc_young_threshold: int = Field(
        default=50_000,
        ge=0,
        description=(
            "Net allocations of tracked objects between young garbage collections (CPython's"
            " default is 700). Every proxied request allocates a few hundred short-lived objects;"
            " at the default, collections cost about a tenth of the gateway's CPU under load."
            " 0 keeps the interpreter's setting."
        ),
    )
    keepalive_seconds: float = Field(
        75.0,
        gt=0,
        description=(
            "Seconds an idle client connection to the REST server stays open; longer than the"
            " 60 s idle timeout of common load balancers, so they close first (as Envoy advises)."
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
    pipeline_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description=(
            "Seconds a synchronous pipeline or inference-graph request waits for its answer "
            "(504 after that; an InferenceGraph's own spec.timeout wins). Longer than one model "
            "call: a pipeline makes several, each possibly held while its model scales from zero."
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
        description="Name of this gateway in its load signals (several gateways each report their share).",
    )
