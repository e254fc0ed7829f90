"""Picks the runtime for a replica from its ServerConfig's runtime name and the agent settings."""

from __future__ import annotations

from pathlib import Path

from modelplane.libs.errors import InvalidError
from modelplane.services.placement.runtimes.attached import AttachedRuntime
from modelplane.services.placement.runtimes.base import Runtime
from modelplane.services.placement.runtimes.custom import CustomRuntime
from modelplane.services.placement.runtimes.layouts import MLServerLayout, PlainLayout
from modelplane.services.placement.runtimes.mlserver import MLServerRuntime
from modelplane.services.placement.runtimes.triton import TritonRuntime
from modelplane.services.placement.settings import PlacementSettings
from modelplane.services.placement.types import ReplicaProfile


def model_repository(state_dir: Path) -> Path:
    """Where model folders go: the runtime serves this directory."""
    return state_dir / "models"


def build_runtime(settings: PlacementSettings, profile: ReplicaProfile, state_dir: Path) -> Runtime:
    repo = model_repository(state_dir)
    if not settings.launch:
        layout = PlainLayout() if profile.runtime == "triton" else MLServerLayout()
        return AttachedRuntime(
            profile.runtime, layout, settings.server_http_endpoint, settings.server_grpc_endpoint
        )
    host, http, grpc = settings.advertise_host, settings.runtime_http_port, settings.runtime_grpc_port
    if profile.runtime == "mlserver":
        return MLServerRuntime(
            profile,
            repo=repo,
            state_dir=state_dir,
            bind_host=settings.runtime_bind_host,
            advertise_host=host,
            http_port=http,
            grpc_port=grpc,
        )
    if profile.runtime == "triton":
        return TritonRuntime(
            profile, repo=repo, state_dir=state_dir, advertise_host=host, http_port=http, grpc_port=grpc
        )
    if profile.runtime == "custom":
        return CustomRuntime(
            profile, repo=repo, state_dir=state_dir, advertise_host=host, http_port=http, grpc_port=grpc
        )
    raise InvalidError(
        f"unknown runtime {profile.runtime!r} (known: mlserver, triton, custom)", field="spec.runtime"
    )
