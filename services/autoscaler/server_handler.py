"""The autoscaler's Server decisions: the scheduler's scale requests turned into Server replicas.

Design: transport-neutral, like ``handler.Autoscaler``. The composition root feeds it the
Servers, ServerConfigs and Models (desired state), each server's replica usage and pending scale
request (the scheduler's), and calls ``evaluate`` when any of them changed and every tick. The
decision itself is ``server_scaling.decide``; a change of replicas is applied through the api
(``ServerReplicaSetter``), exactly where a user's ``kubectl scale`` or manifest edit would go, so
the local launcher (``modelplane up``) and, on Kubernetes, the StatefulSet follow the same field.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Protocol, TypeVar

import structlog

from modelplane.libs.resources.types import Model, Server, ServerConfig
from modelplane.services.autoscaler.server_scaling import (
    ReplicaLoad,
    ScaleAsk,
    ServerDecision,
    ServerLimits,
    decide,
)

log = structlog.get_logger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class ServerReplicaSetter(Protocol):
    async def set_server_replicas(self, server: Server, replicas: int, reason: str) -> None: ...


def model_of(server_model_name: str) -> str:
    """The model of a replica's ``<model>_<version>`` entry."""
    model, _, version = server_model_name.rpartition("_")
    return model if model and version.isdigit() else server_model_name


class ServerAutoscaler:
    def __init__(
        self,
        setter: ServerReplicaSetter,
        *,
        packing: bool,
        on_decision: Callable[[ServerDecision], None] = lambda _d: None,
    ) -> None:
        self._setter = setter
        self._packing = packing
        self._on_decision = on_decision
        self._servers: dict[str, Server] = {}
        self._configs: dict[str, ServerConfig] = {}
        self._models: dict[str, Model] = {}
        self._asks: dict[str, ScaleAsk] = {}
        self._usage: dict[str, list[ReplicaLoad]] = {}
        # The last "not scaling down" reason per server, logged once rather than every tick.
        self._blocked: dict[str, str] = {}
        self._deciding = asyncio.Lock()

    # ---- what the composition root feeds in ---------------------------------------------------
    def server_changed(self, name: str, server: Server | None) -> None:
        _set(self._servers, name, server)

    def config_changed(self, name: str, config: ServerConfig | None) -> None:
        _set(self._configs, name, config)

    def model_changed(self, name: str, model: Model | None) -> None:
        _set(self._models, name, model)

    def ask_changed(self, server: str, ask: ScaleAsk | None) -> None:
        _set(self._asks, server, ask)

    def usage_changed(self, server: str, replicas: list[ReplicaLoad] | None) -> None:
        _set(self._usage, server, replicas)

    # ---- decisions --------------------------------------------------------------------------------
    async def evaluate(self) -> list[ServerDecision]:
        """Decide for every server; apply the changes. Returns the decisions that change replicas."""
        async with self._deciding:
            applied: list[ServerDecision] = []
            for name in sorted(self._servers):
                decision = self._decide(name)
                if decision is None:
                    self._blocked.pop(name, None)
                    continue
                if not decision.changes:
                    if self._blocked.get(name) != decision.reason:
                        self._blocked[name] = decision.reason
                        log.info("server_scale_down_held", server=name, reason=decision.reason)
                    continue
                self._blocked.pop(name, None)
                if await self._apply(self._servers[name], decision):
                    applied.append(decision)
            return applied

    def _decide(self, name: str) -> ServerDecision | None:
        server = self._servers[name]
        spec = server.spec
        limits = ServerLimits(name, spec.replicas, spec.min_replicas, spec.max_replicas)
        config = self._configs.get(spec.server_config)
        workers = config.spec.parallel_workers if config is not None else 0

        def bytes_of(model: str) -> int:
            found = self._models.get(model)
            return found.spec.required_bytes(workers) if found is not None else 0

        return decide(
            limits, self._asks.get(name), self._usage.get(name, []), bytes_of, packing=self._packing
        )

    async def _apply(self, server: Server, decision: ServerDecision) -> bool:
        log.info(
            "server_scaled",
            server=decision.server,
            replicas=decision.desired,
            previous=decision.current,
            reason=decision.reason,
        )
        try:
            await self._setter.set_server_replicas(server, decision.desired, decision.reason)
        except Exception as exc:  # the api is away: the next evaluation decides again
            log.warning("server_scaling_failed", server=decision.server, error=str(exc))
            return False
        # Our view follows at once (the KV watch confirms it shortly): no double apply meanwhile.
        self._servers[decision.server] = dataclasses.replace(
            server, spec=dataclasses.replace(server.spec, replicas=decision.desired)
        )
        self._on_decision(decision)
        return True


def _set(table: dict[K, V], key: K, value: V | None) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value
