"""Small Python models standing in for MLServer in the engine tests, and a pipeline builder.

``Models`` is a real ``StepCaller``: it runs plain functions on the V2 JSON tensors, records every
call, and can hold a model on an ``asyncio.Event`` the test controls (a slow step).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from modelplane.libs.resources.manifests import parse_manifest
from modelplane.libs.resources.types import Pipeline
from modelplane.services.dataflow.engine import CompiledPipeline, compile_pipeline
from modelplane.services.dataflow.errors import StepCallError

Tensor = dict[str, Any]
ModelFn = Callable[[dict[str, Tensor]], list[Tensor]]


def tensor(name: str, values: list[Any], shape: list[int] | None = None, datatype: str = "FP32") -> Tensor:
    return {"name": name, "datatype": datatype, "shape": shape or [1, len(values)], "data": values}


def add(x: dict[str, Tensor]) -> list[Tensor]:
    """Like Seldon's tfsimple: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1."""
    a, b = x["INPUT0"], x["INPUT1"]
    return [
        {**a, "name": "OUTPUT0", "data": [p + q for p, q in zip(a["data"], b["data"], strict=True)]},
        {**a, "name": "OUTPUT1", "data": [p - q for p, q in zip(a["data"], b["data"], strict=True)]},
    ]


def router(x: dict[str, Tensor]) -> list[Tensor]:
    """Emits INPUT0 as OUTPUT0 when its sum is >= 0, else as OUTPUT1 (and the other one empty)."""
    value = x["INPUT0"]
    chosen, other = ("OUTPUT0", "OUTPUT1") if sum(value["data"]) >= 0 else ("OUTPUT1", "OUTPUT0")
    return [{**value, "name": chosen}, {**value, "name": other, "shape": [1, 0], "data": []}]


def echo(x: dict[str, Tensor]) -> list[Tensor]:
    return list(x.values())


def double(x: dict[str, Tensor]) -> list[Tensor]:
    value = next(iter(x.values()))
    return [{**value, "name": "OUTPUT0", "data": [2 * v for v in value["data"]]}]


def negate(x: dict[str, Tensor]) -> list[Tensor]:
    value = next(iter(x.values()))
    return [{**value, "name": "OUTPUT0", "data": [-v for v in value["data"]]}]


def rows(x: dict[str, Tensor]) -> list[Tensor]:
    """OUTPUT0 = INPUT0 and BATCH = the first dimension it was called with (one per model call)."""
    value = x["INPUT0"]
    return [{**value, "name": "OUTPUT0"}, tensor("BATCH", [value["shape"][0]], shape=[1], datatype="INT64")]


def counter(limit: int) -> ModelFn:
    """OUTPUT0 = INPUT0 + 1 while below ``limit``, else DONE = INPUT0: a cycle runs it to DONE."""

    def model(x: dict[str, Tensor]) -> list[Tensor]:
        value = x["INPUT0"]
        if all(v < limit for v in value["data"]):
            return [{**value, "name": "OUTPUT0", "data": [v + 1 for v in value["data"]]}]
        return [{**value, "name": "DONE"}]

    return model


def failing(x: dict[str, Tensor]) -> list[Tensor]:
    raise StepCallError("fail", 500, "the model raised ValueError('boom')")


class Models:
    """A StepCaller over Python model functions."""

    def __init__(self, **models: ModelFn) -> None:
        self._models = models
        self.calls: list[tuple[str, dict[str, Any]]] = []
        # model -> event the model waits for before answering (a slow model)
        self.gates: dict[str, asyncio.Event] = {}
        # model -> set when it has been called (at least once)
        self.started: dict[str, asyncio.Event] = {name: asyncio.Event() for name in models}

    def hold(self, model: str) -> asyncio.Event:
        gate = asyncio.Event()
        self.gates[model] = gate
        return gate

    def called(self, model: str) -> list[dict[str, Any]]:
        return [request for name, request in self.calls if name == model]

    async def __call__(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((model, request))
        self.started[model].set()
        if model in self.gates:
            await self.gates[model].wait()
        inputs = {t["name"]: t for t in request["inputs"]}
        return {"model_name": model, "id": request["id"], "outputs": self._models[model](inputs)}


def pipeline(name: str, spec: dict[str, Any]) -> CompiledPipeline:
    """Compile a Seldon v2 Pipeline manifest's spec, parsed the way the api parses it."""
    resource = parse_manifest(
        {
            "apiVersion": "mlops.seldon.io/v1alpha1",
            "kind": "Pipeline",
            "metadata": {"name": name},
            "spec": spec,
        }
    )
    assert isinstance(resource, Pipeline)
    return compile_pipeline(name, resource.spec)


def by_name(response: dict[str, Any]) -> dict[str, list[Any]]:
    return {t["name"]: t["data"] for t in response["outputs"]}
