"""A user ServingRuntime's container made into a native ServerConfig for one InferenceService.

KServe fills ``{{.Name}}``, ``{{.Namespace}}``, ``{{.Labels.x}}`` and ``{{.Annotations.x}}`` in
the runtime's container from the InferenceService's metadata (a missing label or annotation is
empty). Here the filled strings become process arguments and environment, so a value must be
plain (``[A-Za-z0-9_.-]*``): anything else is refused naming the metadata field it came from.
The container is the one named kserve-container, else the first. An MLServer image (its name
contains "mlserver", or it sets MLSERVER_* variables) runs as the native mlserver runtime; any
other needs its ``command`` (the image's entrypoint is not known here) and runs as ``custom``.
The InferenceService's own ``args`` and ``env`` are added to the runtime's, as KServe merges
the predictor's container into the runtime's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.importers.base import NOT_SUPPORTED_LOCALLY, Problem
from modelplane.libs.resources.importers.kserve_predictor import KSERVE_CONTAINER
from modelplane.libs.resources.importers.kserve_runtimes import Runtime, container_memory
from modelplane.libs.resources.types import NAME_MAX_LENGTH, Meta, ServerConfig, ServerConfigSpec

_TEMPLATE: Final = re.compile(r"\{\{\s*\.(Name|Namespace|Labels\.(\w+)|Annotations\.(\w+))\s*\}\}")
_PLAIN: Final = re.compile(r"^[A-Za-z0-9_.-]*$")
# Our agent chooses the ports of every replica: a runtime's fixed ports would collide.
_PORT_VARIABLES: Final = frozenset({"MLSERVER_HTTP_PORT", "MLSERVER_GRPC_PORT", "MLSERVER_METRICS_PORT"})


@dataclass(frozen=True, slots=True)
class TemplateValues:
    """The InferenceService metadata templates may read."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    def fill(self, text: str) -> str:
        def value(match: re.Match[str]) -> str:
            if match.group(1) == "Name":
                return self._plain(self.name, "metadata.name")
            if match.group(1) == "Namespace":
                return self._plain(self.namespace, "metadata.namespace")
            if match.group(2) is not None:
                key = match.group(2)
                return self._plain(str(self.labels.get(key, "")), f"metadata.labels.{key}")
            key = match.group(3)
            return self._plain(str(self.annotations.get(key, "")), f"metadata.annotations.{key}")

        return _TEMPLATE.sub(value, text)

    @staticmethod
    def _plain(text: str, field: str) -> str:
        if not _PLAIN.match(text):
            raise InvalidError(
                f"{text!r} fills a runtime template and becomes a process argument: "
                "only letters, digits, '_', '.' and '-' are allowed",
                field=field,
            )
        return text


def server_config_name(isvc: str, runtime: str) -> str:
    """``<isvc>-<runtime without kserve->``, hashed short when that is over 63 characters."""
    short = runtime.removeprefix("kserve-")
    name = f"{isvc}-{short}"
    if len(name) <= NAME_MAX_LENGTH:
        return name
    digest = hashlib.sha256(runtime.encode()).hexdigest()[:8]
    return f"{isvc[: NAME_MAX_LENGTH - len(digest) - 1].rstrip('-')}-{digest}"


def runtime_container(runtime: Runtime) -> Mapping[str, Any]:
    for container in runtime.containers:
        if container.get("name") == KSERVE_CONTAINER:
            return container
    return runtime.containers[0]


def _env(container: Mapping[str, Any], values: TemplateValues) -> dict[str, str]:
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        if not isinstance(var, Mapping) or var.get("value") is None:
            continue  # valueFrom (secrets, field refs) has no meaning here
        env[str(var.get("name"))] = values.fill(str(var["value"]))
    return env


def server_config_for(
    runtime: Runtime,
    name: str,
    values: TemplateValues,
    extra_args: tuple[str, ...],
    extra_env: Mapping[str, str],
    field: str,
) -> ServerConfig | Problem:
    """The ServerConfig ``name`` running ``runtime`` for one InferenceService, or the Problem
    that keeps it from running here (``field``: the predictor field that chose the runtime)."""
    container = runtime_container(runtime)
    image = str(container.get("image") or "")
    env = {**_env(container, values), **{k: values.fill(v) for k, v in extra_env.items()}}
    capabilities = tuple(dict.fromkeys(f.name.lower() for f in runtime.formats))
    # Checked when the runtime was applied.
    memory = container_memory(container, "spec.containers")
    if "mlserver" in image.lower() or any(k.startswith("MLSERVER_") for k in env):
        spec = ServerConfigSpec(
            runtime="mlserver",
            capabilities=capabilities,
            memory_bytes=memory,
            env={k: v for k, v in env.items() if v and k not in _PORT_VARIABLES},
        )
        return ServerConfig(meta=Meta(name=name), spec=spec)
    command = tuple(values.fill(str(a)) for a in container.get("command") or [])
    if not command:
        return Problem(
            field=field,
            reason=NOT_SUPPORTED_LOCALLY,
            message=f"{runtime.kind} {runtime.name}: its container {container.get('name')} has no command "
            f"(image {image or 'unset'} runs its entrypoint, which is not known here); give the "
            "runtime a command that runs on this machine",
        )
    args = tuple(values.fill(str(a)) for a in [*(container.get("args") or []), *extra_args])
    spec = ServerConfigSpec(
        runtime="custom", capabilities=capabilities, memory_bytes=memory, env=env, args=args, command=command
    )
    return ServerConfig(meta=Meta(name=name), spec=spec)
