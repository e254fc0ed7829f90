"""The engine's collaborators, injected by the dataflow worker: how a step calls its model, and
who hears about each call."""

from __future__ import annotations

from typing import Any, Protocol


class StepCaller(Protocol):
    async def __call__(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        """V2 JSON request -> V2 JSON response; raises StepCallError on a model error or when
        the model cannot be reached."""
        ...


class StepObserver(Protocol):
    """Synchronous and non-blocking: the worker publishes these fire-and-forget."""

    def step_called(self, step: str, request: dict[str, Any]) -> None: ...

    def step_answered(self, step: str, response: dict[str, Any]) -> None: ...
