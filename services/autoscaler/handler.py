"""The autoscaler's decisions for every autoscaled model, one tick at a time.

Design: transport-neutral. The composition root feeds it the Models (from KV_MODELS) and the
load samples (from the gateways' and workers' NATS reports) and calls ``tick`` every interval.
For each model with ``spec.autoscaling`` it asks its ``ModelScaler`` for a decision, persists the
scaler's state with the decision (``ScalingStore``; read back at start so a restart neither
forgets the load nor scales down), and applies a change of replicas through ``ReplicaSetter``
(the api). A model whose autoscaling is removed is forgotten, its replicas left as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from modelplane.libs.resources.types import Model
from modelplane.services.autoscaler.load import LoadBook, Metric
from modelplane.services.autoscaler.model_scaling import Decision, ModelScaler, ScalerState, ScalingPolicy

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Scaled:
    """What is persisted per model (and shown as its last decision)."""

    model: str
    state: ScalerState
    decision: Decision


class ScalingStore(Protocol):
    async def load(self) -> dict[str, ScalerState]: ...

    async def save(self, scaled: Scaled) -> None: ...

    async def forget(self, model: str) -> None: ...


class ReplicaSetter(Protocol):
    async def set_replicas(self, model: Model, replicas: int, reason: str) -> None: ...


class Autoscaler:
    def __init__(
        self,
        book: LoadBook,
        store: ScalingStore,
        setter: ReplicaSetter,
        *,
        interval_seconds: float,
        window_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._book = book
        self._store = store
        self._setter = setter
        self._interval = interval_seconds
        self._window = window_seconds
        self._clock = clock
        self._models: dict[str, Model] = {}
        self._scalers: dict[str, ModelScaler] = {}
        self._saved: dict[str, ScalerState] = {}
        # A tick and a wake may decide about the same model at the same time; one at a time.
        self._deciding = asyncio.Lock()
        # Models no longer autoscaled whose persisted record is still to delete.
        self._forgotten: set[str] = set()

    async def restore(self) -> None:
        """Size every model from its persisted state: at start, and when this instance becomes
        the leader (the previous leader kept deciding meanwhile; its state is the current one)."""
        self._saved = await self._store.load()
        self._scalers.clear()
        for name, model in list(self._models.items()):
            self.model_changed(name, model)

    def policy(self, model: Model) -> ScalingPolicy | None:
        auto = model.spec.autoscaling
        if auto is None:
            return None
        return ScalingPolicy(
            target=auto.target_requests,
            min_replicas=model.spec.min_replicas,
            max_replicas=model.spec.max_replicas,
            scale_down_delay_seconds=auto.scale_down_delay_seconds,
            interval_seconds=self._interval,
            window_seconds=self._window,
            disabled=auto.disabled,
        )

    def model_changed(self, name: str, model: Model | None) -> None:
        policy = self.policy(model) if model is not None else None
        if model is None or policy is None:
            self._models.pop(name, None)
            if self._scalers.pop(name, None) is not None:
                self._forgotten.add(name)  # its record goes at the next tick
            self._book.forget(name)
            return
        self._forgotten.discard(name)
        self._models[name] = model
        scaler = self._scalers.get(name)
        if scaler is None:
            self._scalers[name] = ModelScaler(policy, self._saved.pop(name, None), metric=_metric_of(model))
        else:
            scaler.retune(policy)

    async def tick(self) -> list[Scaled]:
        """One interval: a decision per autoscaled model; changes applied through the api."""
        async with self._deciding:
            for name in sorted(self._forgotten):
                try:
                    await self._store.forget(name)
                    self._forgotten.discard(name)
                except Exception as exc:  # NATS is away: try again next tick
                    log.warning("model_scaling_forget_failed", model=name, error=str(exc))
            now = self._clock()
            out: list[Scaled] = []
            for name, scaler in list(self._scalers.items()):
                model = self._models.get(name)
                if model is None:  # removed while an earlier model's change was applied
                    continue
                metric = self._book.metric(name, _metric_of(model), now)
                decision = scaler.tick(metric, model.spec.replicas)
                scaled = Scaled(name, scaler.state(), decision)
                out.append(scaled)
                await self._apply(model, scaled)
            return out

    async def wake(self, name: str) -> Scaled | None:
        """Requests for ``name`` are held (no ready replica): a model at zero replicas gets one
        now, not at the next tick (KubeAI's scale-from-zero). None when there is nothing to do:
        not autoscaled, autoscaling disabled, or replicas already above zero (loading)."""
        async with self._deciding:
            model = self._models.get(name)
            scaler = self._scalers.get(name)
            if model is None or scaler is None or scaler.policy.disabled:
                return None
            # Held requests are load: ticks wanting fewer replicas start counting again (the
            # caller also records the held requests, so the next tick sees them).
            scaler.woken()
            if model.spec.replicas > 0:
                return None
            desired = scaler.policy.clamp(1)
            decision = Decision(0, desired, scaler.average, f"request held at 0 replicas -> {desired}")
            scaled = Scaled(name, scaler.state(), decision)
            await self._apply(model, scaled)
            return scaled

    async def _apply(self, model: Model, scaled: Scaled) -> None:
        name, decision = scaled.model, scaled.decision
        try:
            await self._store.save(scaled)
            if decision.changes:
                log.info("model_scaled", model=name, replicas=decision.desired, reason=decision.reason)
                await self._setter.set_replicas(model, decision.desired, decision.reason)
                # Our view follows at once: the KV watch brings the same change a moment later,
                # and a wake arriving meanwhile must not apply it twice.
                self._models[name] = dataclasses.replace(
                    model, spec=dataclasses.replace(model.spec, replicas=decision.desired)
                )
        except Exception as exc:  # the api or NATS is away: the next tick decides again
            log.warning("model_scaling_failed", model=name, error=str(exc))


def _metric_of(model: Model) -> Metric:
    """What the model is sized by: requests per second, or requests in flight (the default)."""
    auto = model.spec.autoscaling
    return "rps" if auto is not None and auto.metric == "rps" else "concurrency"
