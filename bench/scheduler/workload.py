"""A deterministic synthetic cluster and model mix for the scheduler benchmarks.

Servers come in three kinds (MLServer, Triton, MLServer with an extra ``custom-cap``), models
mix requirements, memory and replica counts; a few are pinned to a server, a few are explainers,
and a few require a capability no server has (they must fail with a reason).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from modelplane.libs.resources.defaults import MLSERVER_CAPABILITIES, TRITON_CAPABILITIES
from modelplane.libs.resources.types import ModelSpec

MI = 1 << 20
GI = 1 << 30


@dataclass(frozen=True, slots=True)
class ServerKind:
    prefix: str
    capabilities: tuple[str, ...]
    memory_bytes: int
    overcommit_percent: int
    parallel_workers: int


KINDS = (
    ServerKind("mlserver", MLSERVER_CAPABILITIES, 16 * GI, 10, 1),
    ServerKind("triton", TRITON_CAPABILITIES, 16 * GI, 0, 1),
    ServerKind("custom", (*MLSERVER_CAPABILITIES, "custom-cap"), 32 * GI, 20, 1),
)
# Share of servers per kind (in KINDS order).
KIND_SHARES = (0.6, 0.3, 0.1)

# (requirements, weight, kind that can run it or None)
REQUIREMENT_MIX: tuple[tuple[tuple[str, ...], float, str | None], ...] = (
    (("sklearn",), 0.45, "mlserver"),
    (("xgboost",), 0.15, "mlserver"),
    (("onnx",), 0.20, "triton"),
    (("triton", "pytorch"), 0.10, "triton"),
    (("custom-cap",), 0.05, "custom"),
    ((), 0.045, "mlserver"),
    (("gpu",), 0.005, None),
)
MEMORY_MIX = (
    (32 * MI, 0.25),
    (64 * MI, 0.25),
    (128 * MI, 0.2),
    (256 * MI, 0.15),
    (512 * MI, 0.1),
    (GI, 0.05),
)
REPLICA_MIX = ((1, 0.6), (2, 0.25), (3, 0.15))
PINNED_SHARE = 0.05
EXPLAINER_SHARE = 0.01


@dataclass(frozen=True, slots=True)
class ServerPlan:
    name: str
    kind: ServerKind


def plan_servers(count: int) -> list[ServerPlan]:
    plans: list[ServerPlan] = []
    for kind, share in zip(KINDS, KIND_SHARES, strict=True):
        n = max(1, round(count * share))
        plans.extend(ServerPlan(f"{kind.prefix}-{i:03d}", kind) for i in range(n))
    return plans[:count] if len(plans) > count else plans


def plan_models(count: int, servers: list[ServerPlan], seed: int = 42) -> list[tuple[str, ModelSpec]]:
    rnd = random.Random(seed)
    by_kind: dict[str, list[str]] = {}
    for s in servers:
        by_kind.setdefault(s.kind.prefix, []).append(s.name)
    requirements = [r for r, _, _ in REQUIREMENT_MIX]
    req_weights = [w for _, w, _ in REQUIREMENT_MIX]
    kinds = {r: k for r, _, k in REQUIREMENT_MIX}
    models: list[tuple[str, ModelSpec]] = []
    for i in range(count):
        wanted = rnd.choices(requirements, req_weights)[0]
        memory = rnd.choices([m for m, _ in MEMORY_MIX], [w for _, w in MEMORY_MIX])[0]
        replicas = rnd.choices([n for n, _ in REPLICA_MIX], [w for _, w in REPLICA_MIX])[0]
        kind = kinds[wanted]
        pinned = ""
        if kind is not None and rnd.random() < PINNED_SHARE:
            pinned = rnd.choice(by_kind[kind])
        explainer = ""
        if kind == "mlserver" and rnd.random() < EXPLAINER_SHARE:
            explainer = f"model-{rnd.randrange(max(1, i)):05d}"
        models.append(
            (
                f"model-{i:05d}",
                ModelSpec(
                    storage_uri=f"file:///models/{i}",
                    requirements=wanted,
                    memory_bytes=memory,
                    replicas=replicas,
                    min_replicas=rnd.choice((0, 1)),
                    server=pinned,
                    explainer_for=explainer,
                ),
            )
        )
    return models
