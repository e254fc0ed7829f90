"""The gateway's side of overcommit: reload an evicted model on a miss, and say what is used.

Why: an agent whose replica has more models assigned than fit in memory unloads the least
recently used ones from its model server while they stay registered (routes still point at the
replica). A request for such a model gets "no such model" from the server; the handler then asks
the replica's agent to make it resident again (``ensure``) and retries once. The agent needs to
know which models are used to pick what to evict; the gateway is the only one that sees requests,
so it reports, per replica, the names that served requests, batched about once a second (one
small NATS message per busy replica, nothing per request).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import structlog
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from modelplane.libs import subjects
from modelplane.libs.routes import RouteEndpoint
from modelplane.proto import agent_pb2

log = structlog.get_logger(__name__)


class NatsResidency:
    """Ensure requests to agents (one at a time per replica and model) and batched usage reports."""

    def __init__(self, nc: NATS, reload_timeout: float) -> None:
        self._nc = nc
        self._timeout = reload_timeout
        # (replica, server model name) -> the ensure under way: concurrent misses share it.
        self._inflight: dict[tuple[str, str], asyncio.Future[str | None]] = {}
        self._used: dict[tuple[str, int], set[str]] = defaultdict(set)

    async def ensure(
        self, endpoint: RouteEndpoint, model: str, version: int, server_model_name: str
    ) -> str | None:
        """Ask the replica's agent to make the model resident; None once it is, else why not."""
        key = (endpoint.replica, server_model_name)
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            outcome = await self._request(endpoint, model, version)
            future.set_result(outcome)
            return outcome
        except BaseException as exc:
            future.set_exception(exc)
            # Nobody else may be waiting: do not let an unretrieved exception warn at exit.
            future.exception()
            raise
        finally:
            del self._inflight[key]

    async def _request(self, endpoint: RouteEndpoint, model: str, version: int) -> str | None:
        command = agent_pb2.EnsureLoadedCommand(model=model, version=version)
        subject = subjects.agent_command(endpoint.server, endpoint.index, "ensure")
        log.info("model_reload_requested", replica=endpoint.replica, model=model, version=version)
        try:
            msg = await self._nc.request(subject, command.SerializeToString(), timeout=self._timeout)
        except NoRespondersError:
            return f"the agent of replica {endpoint.replica} is not reachable"
        except NatsTimeoutError:
            return (
                f"the agent of replica {endpoint.replica} did not reload the model within {self._timeout:g}s"
            )
        reply = agent_pb2.CommandReply()
        try:
            reply.ParseFromString(msg.data)
        except DecodeError:
            return f"the agent of replica {endpoint.replica} sent an unreadable reply"
        return None if reply.accepted else reply.reason or "the agent refused"

    def used(self, endpoint: RouteEndpoint, server_model_name: str) -> None:
        """A request to ``server_model_name`` on ``endpoint`` was answered (cheap: a set insert)."""
        self._used[(endpoint.server, endpoint.index)].add(server_model_name)

    async def report_usage(self, interval: float) -> None:
        """Publish the names used per replica every ``interval`` seconds (until cancelled)."""
        while True:
            await asyncio.sleep(interval)
            await self.flush()

    async def flush(self) -> None:
        used, self._used = self._used, defaultdict(set)
        for (server, index), names in used.items():
            report = agent_pb2.ModelUsage(server_model_names=sorted(names))
            await self._nc.publish(subjects.agent_usage(server, index), report.SerializeToString())
