"""Local replica launcher: one placement agent process per desired Server replica.

On Kubernetes a Server is a StatefulSet and the kubelet starts its pods; locally `up` plays that
part. It watches the Server resources in KV and keeps, for each Server, agents with indexes
0..replicas-1 running (each agent starts its own model-server runtime). Scaling down stops the
highest indexes first, as a StatefulSet does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.process import sweep_records
from modelplane.libs.store import TypedBucket
from modelplane.libs.tasks import TaskSupervisor
from modelplane.proto import resources_pb2
from modelplane.up.children import Child, modelplane_argv
from modelplane.up.nats_access import NatsAccess, SharedCredentials

log = structlog.get_logger(__name__)


# The file an agent keeps beside the model server it launched (placement runtimes/server_process).
RUNTIME_RECORD = "runtime.json"

# Seconds a stopping agent gets before SIGKILL: its drain (placement drain_timeout, 30 s by
# default) plus its own shutdown (10 s), plus a margin.
AGENT_STOP_TIMEOUT = 45.0


class ReplicaLauncher:
    def __init__(
        self,
        js: JetStreamContext,
        state_dir: Path,
        base_env: Mapping[str, str],
        supervisor: TaskSupervisor,
        make_child: Callable[..., Child] = Child,
        nats_access: NatsAccess | None = None,
    ) -> None:
        self._js = js
        self._state_dir = state_dir
        self._base_env = dict(base_env)
        self._supervisor = supervisor
        self._make_child = make_child
        # Each agent connects to NATS as its own user (or with base_env's shared credentials).
        self._nats_access: NatsAccess = nats_access or SharedCredentials(None)
        self._agents: dict[tuple[str, int], Child] = {}
        self._lock = asyncio.Lock()
        self.caught_up = asyncio.Event()

    async def start(self) -> None:
        servers = await TypedBucket.open(self._js, subjects.KV_SERVERS, resources_pb2.Server)
        self._supervisor.spawn("launcher-watch", self._watch(servers))

    async def _watch(self, servers: TypedBucket[resources_pb2.Server]) -> None:
        async for change in servers.watch():
            if change is None:
                self.caught_up.set()
                continue
            desired = change.value.spec.replicas if change.value is not None else 0
            await self._scale(change.key, desired)

    async def _scale(self, server: str, desired: int) -> None:
        async with self._lock:
            running = sorted(i for (s, i) in self._agents if s == server)
            for index in range(desired):
                if (server, index) not in self._agents:
                    await self._start_agent(server, index)
            for index in reversed(running):
                if index >= desired:
                    child = self._agents.pop((server, index))
                    log.info("replica_stopping", server=server, index=index)
                    await child.stop()
                    await self._nats_access.forget_agent(server, index)

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
