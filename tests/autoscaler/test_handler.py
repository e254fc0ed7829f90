"""The autoscaler's handler with a controlled clock: ticks and wakes decide, persist and apply."""

from __future__ import annotations

from modelplane.libs.resources.types import Autoscaling, Meta, Model, ModelSpec
from modelplane.services.autoscaler.handler import Autoscaler, Scaled
from modelplane.services.autoscaler.load import LoadBook, LoadSample
from modelplane.services.autoscaler.model_scaling import ScalerState


class MemoryStore:
    """The ScalingStore contract kept in a dict (KvScalingStore is tested against NATS)."""

    def __init__(self, saved: dict[str, ScalerState] | None = None) -> None:
        self.saved = dict(saved or {})
        self.records: dict[str, Scaled] = {}

    async def load(self) -> dict[str, ScalerState]:
        return dict(self.saved)

    async def save(self, scaled: Scaled) -> None:
        self.records[scaled.model] = scaled

    async def forget(self, model: str) -> None:
        self.records.pop(model, None)


class Recorder:
    def __init__(self) -> None:
        self.applied: list[tuple[str, int, str]] = []

    async def set_replicas(self, model: Model, replicas: int, reason: str) -> None:
        self.applied.append((model.meta.name, replicas, reason))


def model(replicas: int = 1, *, min_replicas: int = 0, disabled: bool = False, auto: bool = True) -> Model:
    autoscaling = Autoscaling(target_requests=2, scale_down_delay_seconds=20, disabled=disabled)
    spec = ModelSpec(
        storage_uri="file:///m",
        replicas=replicas,
        min_replicas=min_replicas,
        max_replicas=5,
        autoscaling=autoscaling if auto else None,
    )
    return Model(Meta("iris"), spec)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def build(store: MemoryStore | None = None) -> tuple[Autoscaler, LoadBook, MemoryStore, Recorder, Clock]:
    clock, book, recorder = Clock(), LoadBook(stale_after=5), Recorder()
    store = store or MemoryStore()
    scaler = Autoscaler(book, store, recorder, interval_seconds=10, window_seconds=20, clock=clock)
    return scaler, book, store, recorder, clock


async def test_a_tick_applies_the_desired_replicas_and_persists_the_decision() -> None:
    """8 in flight, target 2, a two-sample window: 2 then 4 replicas, each applied and recorded."""
    autoscaler, book, store, recorder, clock = build()
    autoscaler.model_changed("iris", model(1))
    for step in range(2):
        clock.now = 10.0 * (step + 1)
        book.record("iris", "gw", LoadSample(8, 0, 0, 1.0), clock.now)
        await autoscaler.tick()
    assert [(n, r) for n, r, _ in recorder.applied] == [("iris", 2), ("iris", 4)]
    assert store.records["iris"].decision.reason == "avg concurrency 8 / target 2 -> 4"


async def test_a_wake_gives_a_model_at_zero_one_replica_once() -> None:
    """The first wake applies one replica; more wakes before the change lands apply nothing."""
    autoscaler, _, store, recorder, _ = build()
    autoscaler.model_changed("iris", model(0))
    first = await autoscaler.wake("iris")
    again = await autoscaler.wake("iris")
    assert first is not None
    assert first.decision.desired == 1
    assert again is None
    assert recorder.applied == [("iris", 1, "request held at 0 replicas -> 1")]
    assert store.records["iris"].decision.reason == "request held at 0 replicas -> 1"


async def test_a_wake_leaves_running_disabled_and_unscaled_models_alone() -> None:
    """Replicas above zero, autoscaling disabled, or no autoscaling at all: no change."""
    for changed in (model(2), model(0, disabled=True), model(0, auto=False)):
        autoscaler, _, _, recorder, _ = build()
        autoscaler.model_changed("iris", changed)
        assert await autoscaler.wake("iris") is None
        assert recorder.applied == []


async def test_a_model_no_longer_autoscaled_loses_its_record() -> None:
    """Removing spec.autoscaling stops the decisions and deletes the record at the next tick."""
    autoscaler, _, store, _recorder, clock = build()
    autoscaler.model_changed("iris", model(1))
    clock.now = 10
    await autoscaler.tick()
    assert "iris" in store.records
    autoscaler.model_changed("iris", model(1, auto=False))
    await autoscaler.tick()
    assert store.records == {}


async def test_a_restart_keeps_the_saved_average() -> None:
    """Restored with average 8 and no load reports yet: no scale-down (missing is zero, but the
    window starts from the saved average)."""
    autoscaler, _, _, recorder, clock = build(MemoryStore({"iris": ScalerState(average=8.0)}))
    await autoscaler.restore()
    autoscaler.model_changed("iris", model(4))
    clock.now = 10
    [scaled] = await autoscaler.tick()
    assert scaled.decision.desired == 4
    assert recorder.applied == []


async def test_a_wake_calls_off_a_scale_down_under_way() -> None:
    """One tick already wanted fewer replicas; a held request resets the count, so the next idle
    tick does not take the model down (it needs two in a row)."""
    autoscaler, _, _, recorder, clock = build()
    autoscaler.model_changed("iris", model(1))
    clock.now = 10
    [first] = await autoscaler.tick()
    assert "scale-down waits (1/2 ticks)" in first.decision.reason
    assert await autoscaler.wake("iris") is None  # already at one replica: nothing to apply
    clock.now = 20
    [second] = await autoscaler.tick()
    assert "scale-down waits (1/2 ticks)" in second.decision.reason
    assert recorder.applied == []
