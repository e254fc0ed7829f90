"""The agent watches its model server process: a runtime that dies takes the replica down loudly."""

from __future__ import annotations

import asyncio
import os
import signal

from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.store import TypedBucket
from modelplane.proto import state_pb2
from modelplane.services.placement.app import App as PlacementApp
from modelplane.services.placement.runtimes.mlserver import MLServerRuntime
from tests.placement.conftest import eventually


async def test_killed_runtime_deletes_replica_key_and_fails_agent(
    mlserver_agent: PlacementApp, js: JetStreamContext
) -> None:
    """Killing the agent's MLServer deletes the replica's KV key and the agent reports failure."""
    replicas = await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
    key = subjects.replica_key("mlserver", 0)
    assert await replicas.try_get(key) is not None
    runtime = mlserver_agent.runtime
    assert isinstance(runtime, MLServerRuntime)
    pid = runtime.pid
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)

    async def key_gone() -> bool:
        return await replicas.try_get(key) is None

    await eventually(key_gone)
    reason = await asyncio.wait_for(mlserver_agent.wait_failed(), 20)
    assert reason == "mlserver exited unexpectedly with code -9"
