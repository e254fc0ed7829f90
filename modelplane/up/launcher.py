"""Local replica launcher: one placement agent process per desired Server replica.

On Kubernetes a Server is a StatefulSet and the kubelet starts its pods; locally `up` plays that
part. It watches the Server resources in KV and keeps, for each Server, agents with indexes
0..replicas-1 running (each agent starts its own model-server runtime). Scaling down stops the
highest indexes first, as a StatefulSet does.

Bounds, as a kubelet refuses a pod that does not fit the node: a Server without maxReplicas runs
at most ``MODELPLANE_SCHEDULER_MAX_SERVER_REPLICAS`` replicas, and a replica whose declared
memory (the Server's, else its ServerConfig's) exceeds the machine's available memory
(MemAvailable, less what the replicas started in the same pass declared) is not started. The
first replica not started is registered in KV_REPLICAS as unavailable with the reason, so the
Server's status (``modelplane server status``) says why it is short; the record is removed
when that changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import structlog
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.process import sweep_records
from modelplane.libs.resources.replica_cap import (
    DEFAULT_MAX_SERVER_REPLICAS,
    MAX_SERVER_REPLICAS_ENV,
    replica_cap,
)
from modelplane.libs.store import TypedBucket
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import resources_pb2, state_pb2
from modelplane.up.children import Child, modelplane_argv
from modelplane.up.nats_access import NatsAccess, SharedCredentials

log = structlog.get_logger(__name__)


# The file an agent keeps beside the model server it launched (placement runtimes/server_process).
RUNTIME_RECORD = "runtime.json"

# Seconds a stopping agent gets before SIGKILL: its drain (placement drain_timeout, 30 s by
# default) plus its own shutdown (10 s), plus a margin.
AGENT_STOP_TIMEOUT = 45.0


def available_memory_bytes() -> int | None:
    """The machine's available memory (Linux MemAvailable), or None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.1f} GiB"


class ReplicaLauncher:
    def __init__(
        self,
        js: JetStreamContext,
        state_dir: Path,
        base_env: Mapping[str, str],
        supervisor: TaskSupervisor,
        make_child: Callable[..., Child] = Child,
        *,
        max_server_replicas: int = DEFAULT_MAX_SERVER_REPLICAS,
        available_memory: Callable[[], int | None] = available_memory_bytes,
        nats_access: NatsAccess | None = None,
    ) -> None:
        self._js = js
        self._state_dir = state_dir
        self._base_env = dict(base_env)
        self._supervisor = supervisor
        self._make_child = make_child
        self._max_server_replicas = max_server_replicas
        self._available_memory = available_memory
        # Each agent connects to NATS as its own user (or with base_env's shared credentials).
        self._nats_access: NatsAccess = nats_access or SharedCredentials(None)
        self._agents: dict[tuple[str, int], Child] = {}
        # Per Server, the index of the replica registered as "not started" (see _refuse).
        self._refused: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self.caught_up = asyncio.Event()

    async def start(self) -> None:
        servers = await TypedBucket.open(self._js, subjects.KV_SERVERS, resources_pb2.Server)
        self._configs = await TypedBucket.open(
            self._js, subjects.KV_SERVER_CONFIGS, resources_pb2.ServerConfig
        )
        self._replicas = await TypedBucket.open(self._js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
        self._supervisor.spawn("launcher-watch", self._watch(servers))

    async def _watch(self, servers: TypedBucket[resources_pb2.Server]) -> None:
        async for change in servers.watch():
            if change is None:
                self.caught_up.set()
                continue
            if change.value is None:
                await self._scale(change.key, 0, 0, 0)
                continue
            spec = change.value.spec
            cap = replica_cap(spec.max_replicas, self._max_server_replicas)
            await self._scale(change.key, spec.replicas, cap, await self._declared_memory(change.value))

    async def _declared_memory(self, server: resources_pb2.Server) -> int:
        """Memory one replica declares: the Server's own, else its ServerConfig's (0: none)."""
        if server.spec.memory_bytes > 0:
            return int(server.spec.memory_bytes)
        config = await self._configs.try_get(server.spec.server_config)
        return int(config.value.spec.memory_bytes) if config is not None else 0

    async def _scale(self, server: str, wanted: int, cap: int, memory: int) -> None:
        async with self._lock:
            await self._withdraw_refusal(server)
            running = sorted(i for (s, i) in self._agents if s == server)
            desired = min(wanted, cap)
            # Read once per pass: replicas started now have not taken their memory yet.
            budget = self._available_memory() if memory > 0 else None
            refusal = ""
            for index in range(desired):
                if (server, index) in self._agents:
                    continue
                if budget is not None and memory > budget:
                    refusal = (
                        f"replica {index} not started: it declares {_gib(memory)} of memory and the"
                        f" machine has {_gib(max(budget, 0))} available"
                    )
                    await self._refuse(server, index, refusal)
                    break
                await self._start_agent(server, index)
                if budget is not None:
                    budget -= memory
            if not refusal and wanted > cap:
                await self._refuse(
                    server,
                    cap,
                    f"{wanted - cap} of {wanted} replicas not started: above the limit of {cap} for a"
                    f" Server without maxReplicas ({MAX_SERVER_REPLICAS_ENV})",
                )
            for index in reversed(running):
                if index >= desired:
                    child = self._agents.pop((server, index))
                    log.info("replica_stopping", server=server, index=index)
                    await child.stop()
                    await self._nats_access.forget_agent(server, index)

    async def _refuse(self, server: str, index: int, reason: str) -> None:
        """Register replica ``index`` as unavailable with ``reason`` (what the Server's status shows)."""
        log.warning("replica_not_started", server=server, index=index, reason=reason)
        info = state_pb2.ReplicaInfo(
            server=server,
            index=index,
            unavailable_reason=reason,
            registered_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        )
        await self._replicas.put(subjects.replica_key(server, index), info)
        self._refused[server] = index

    async def _withdraw_refusal(self, server: str) -> None:
        index = self._refused.pop(server, None)
        if index is not None and (server, index) not in self._agents:
            await self._replicas.delete(subjects.replica_key(server, index))

    async def _start_agent(self, server: str, index: int) -> None:
        env = {
            **self._base_env,
            "MODELPLANE_PLACEMENT_SERVER": server,
            "MODELPLANE_PLACEMENT_INDEX": str(index),
            "MODELPLANE_PLACEMENT_STATE_DIR": str(self._state_dir / "replicas" / f"{server}-{index}"),
            **await self._nats_access.agent_env(server, index),
        }
        child = self._make_child(
            f"placement/{server}-{index}",
            modelplane_argv("run", "placement"),
            env,
            self._supervisor,
            stop_timeout=AGENT_STOP_TIMEOUT,
        )
        self._agents[(server, index)] = child
        log.info("replica_starting", server=server, index=index)
        await child.start()

    def running(self) -> list[tuple[str, int]]:
        return sorted(self._agents)

    async def stop(self) -> None:
        """Stop every agent (they unregister their replicas and stop their runtimes)."""
        async with self._lock:
            agents, self._agents = list(self._agents.values()), {}
        await asyncio.gather(*(a.stop() for a in agents))
        # Model servers outlive an agent killed outright (so a restarted agent adopts them with
        # their models loaded), hence they no longer die with their agent. A clean agent stop
        # stops its server and removes the record; anything still recorded now belongs to an
        # agent that crashed or was killed after its stop timeout, and nobody will adopt it:
        # kill it (the whole group, only if the recorded start time still matches the pid).
        records = sorted((self._state_dir / "replicas").glob(f"*/{RUNTIME_RECORD}"))
        for pid in await asyncio.to_thread(sweep_records, records):
            log.warning("runtime_swept", pid=pid)
