"""Settings of the gateway process (environment variables ``MODELPLANE_GATEWAY_*``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from modelplane.libs.dataplane.settings import DataPlaneSettings


class GatewaySettings(DataPlaneSettings):
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
    max_request_line_bytes: int = Field(
        8 * 1024,
        gt=0,
        description="Longest REST request target in bytes (414 beyond it); nginx's default buffer is 8 KiB.",
    )
    max_header_bytes: int = Field(
        16 * 1024,
        gt=0,
        description=(
            "Largest single REST request header (name and value) in bytes (431 beyond it); room for"
            " large cookies and tokens."
        ),
    )
    max_headers_bytes: int = Field(
        64 * 1024,
        gt=0,
        description="Largest sum of one REST request's header names and values in bytes (431 beyond it).",
    )
    max_headers: int = Field(
        100,
        gt=0,
        description="Most headers in one REST request (431 beyond it); Envoy's default limit is 100.",
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description=(
            "Seconds a REST request's whole head may take, from a new connection's start or a later"
            " request's first byte (408 and close after it): a client trickling bytes cannot hold"
            " a connection."
        ),
    )
    body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Seconds the REST server waits for the next piece of a request body (408 and close).",
    )
    max_connections: int = Field(
        1024,
        gt=0,
        description=(
            "Most open REST client connections; one more is answered 503 and closed. 1024 stays"
            " under a laptop's default limit of open files."
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
    auth: Literal["off", "required"] = Field(
        "off",
        description=(
            "off: anyone who reaches the gateway may run inference (local `up`'s default, as"
            " Seldon, KServe and KubeAI ship). required: every route but the health probes and"
            " /metrics needs a bearer token of role inference or admin (401 without, 403 for"
            " another role), checked against the api's token bucket."
        ),
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Browser origins (scheme://host[:port], or *) allowed to call the gateway cross-origin;"
            " their preflights are answered and their answers carry CORS headers. Empty: a request"
            " whose Origin is not the gateway's own is 403, so a web page cannot use it."
            " JSON list or comma-separated."
        ),
    )
    max_held_bytes_per_model: int = Field(
        256 * 1024 * 1024,
        ge=0,
        description=(
            "Bytes of request bodies held for one model with no ready replica (scaled to zero,"
            " loading); beyond it 503 with Retry-After, refused before the body is read when it"
            " declares its length. 256 MiB fits a laptop."
        ),
    )
    max_held_bytes: int = Field(
        512 * 1024 * 1024,
        ge=0,
        description=(
            "Bytes of request bodies held over all models with no ready replica; beyond it 503"
            " with Retry-After. 512 MiB bounds the gateway's memory on a laptop."
        ),
    )
    tls_cert: Path | None = Field(
        None,
        description="PEM certificate (chain) to serve REST and gRPC over TLS; with tls_key. Unset: plain TCP.",
    )
    tls_key: Path | None = Field(
        None,
        description="PEM private key of tls_cert (keep it 0600).",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # "a,b" from the environment as well as a JSON list.
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> GatewaySettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        return self
