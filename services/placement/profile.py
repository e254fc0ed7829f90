"""Resolving this replica's profile from its Server and ServerConfig in KV.

Design: the agent may start before anyone applied its Server (e.g. `modelplane up` starts agents
and the api together), so a missing resource is waited for, not an error: the agent polls KV and
logs once per change what it is still missing.
"""

from __future__ import annotations

import asyncio

import structlog

from modelplane.libs.resources import convert, defaults
from modelplane.libs.resources.types import Server, ServerConfig, effective_capabilities
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2
from modelplane.services.placement.types import ReplicaProfile

log = structlog.get_logger(__name__)

DEFAULT_PARALLEL_WORKERS = 1


def resolve_profile(server: Server, config: ServerConfig) -> ReplicaProfile:
    """Seldon rules: Server capabilities replace, extraCapabilities add; Server memory overrides."""
    return ReplicaProfile(
        server_config=config.meta.name,
        runtime=config.spec.runtime,
        capabilities=effective_capabilities(server.spec, config.spec),
        memory_bytes=server.spec.memory_bytes or config.spec.memory_bytes or defaults.DEFAULT_REPLICA_MEMORY,
        overcommit_percent=config.spec.overcommit_percent,
        parallel_workers=config.spec.parallel_workers or DEFAULT_PARALLEL_WORKERS,
        env={**config.spec.env, **server.spec.env},
        args=config.spec.args,
        command=config.spec.command,
    )


async def wait_for_profile(
    servers: TypedBucket[resources_pb2.Server],
    configs: TypedBucket[resources_pb2.ServerConfig],
    server_name: str,
    poll_interval: float,
) -> ReplicaProfile:
    """Read the Server and its ServerConfig, waiting (forever) until both exist."""
    last_missing = ""
    while True:
        missing = ""
        found_server = await servers.try_get(server_name)
        if found_server is None:
            missing = f"Server {server_name}"
        else:
            server = convert.server_from_pb(found_server.value)
            found_config = await configs.try_get(server.spec.server_config)
            if found_config is None:
                missing = f"ServerConfig {server.spec.server_config}"
            else:
                return resolve_profile(server, convert.server_config_from_pb(found_config.value))
        if missing != last_missing:
            log.warning("waiting_for_resource", missing=missing)
            last_missing = missing
        await asyncio.sleep(poll_interval)
