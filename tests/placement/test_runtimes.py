"""Runtime selection and the custom runtime's argv template."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.services.placement.runtimes import build_runtime
from modelplane.services.placement.runtimes.custom import CustomRuntime, render
from modelplane.services.placement.settings import PlacementSettings
from modelplane.services.placement.types import ReplicaProfile


def _profile(runtime: str, command: tuple[str, ...] = ()) -> ReplicaProfile:
    return ReplicaProfile(
        server_config="c",
        runtime=runtime,
        capabilities=(),
        memory_bytes=1,
        overcommit_percent=0,
        parallel_workers=1,
        command=command,
    )


def test_render_substitutes_placeholders() -> None:
    """{http_port} {grpc_port} {model_repository} are replaced; other braces stay."""
    argv = render(
        ("srv", "--http={http_port}", "--grpc={grpc_port}", "{model_repository}", "{other}"),
        {"http_port": "1", "grpc_port": "2", "model_repository": "/repo"},
    )
    assert argv == ["srv", "--http=1", "--grpc=2", "/repo", "{other}"]


def test_custom_without_command_is_unavailable(tmp_path: Path) -> None:
    """A custom ServerConfig without a command makes the replica unavailable, not a crash."""
    runtime = build_runtime(PlacementSettings(state_dir=tmp_path), _profile("custom"), tmp_path)
    assert isinstance(runtime, CustomRuntime)
    assert "has no command" in runtime.unavailable_reason()


def test_custom_with_missing_binary_is_unavailable(tmp_path: Path) -> None:
    """A custom command whose program is not installed makes the replica unavailable."""
    profile = _profile("custom", ("no-such-server-binary", "{http_port}"))
    runtime = build_runtime(PlacementSettings(state_dir=tmp_path), profile, tmp_path)
    assert runtime.unavailable_reason() == "runtime unavailable: no-such-server-binary not found"


def test_unknown_runtime_is_invalid(tmp_path: Path) -> None:
    """An unknown runtime name is an InvalidError naming the field."""
    with pytest.raises(InvalidError) as caught:
        build_runtime(PlacementSettings(state_dir=tmp_path), _profile("nope"), tmp_path)
    assert caught.value.field == "spec.runtime"


def test_attach_needs_an_endpoint() -> None:
    """launch=false without server_http_endpoint is rejected at settings validation."""
    with pytest.raises(ValueError, match="server_http_endpoint"):
        PlacementSettings(launch=False)
