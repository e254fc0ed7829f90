"""Running one request through a compiled pipeline, with Seldon v2's dataflow semantics.

Design: a ``_Run`` holds the request's values: the pipeline's inputs and, per step, the tensors
it was sent (``s.inputs``) and answered (``s.outputs``), each with a version that grows on every
new value (cycles). After every change it *advances*: every step whose input join and trigger
join hold fires (its call runs on a task owned by the run), the output is delivered once its
join holds, and the earliest join deadline is remembered. Then it waits for a step to answer or
that deadline, and advances again.

Advancing runs in two sweeps. The first fires only joins that fully hold, until nothing more
fires. The second settles partial joins, which needs to know whether a missing reference can
still come: a step is *live* when it is running, or can still fire and one of its upstream steps
is live (after the first sweep no step can fire without new input). A partial join whose missing
references are all dead settles at once (outer: fires with what it has; inner: never fires,
which is conditional routing); otherwise it waits until its window, counted from its first
arrival, has passed (outer: fires; inner: ``JoinTimeoutError``).

The run ends at quiescence: nothing running. Without an output by then: ``NoOutputError``,
explaining what the output waited for and why each missing step never ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.pipeline_refs import TensorRef
from modelplane.libs.tasks import TaskSupervisor
from modelplane.services.dataflow.engine.batching import StepBatcher
from modelplane.services.dataflow.engine.calls import StepCaller, StepObserver
from modelplane.services.dataflow.engine.compiled import (
    PIPELINE_INPUTS,
    CompiledPipeline,
    CompiledStep,
    Join,
    Source,
    source_of,
)
from modelplane.services.dataflow.engine.joins import JoinState, join_state
from modelplane.services.dataflow.engine.tensors import Tensor, is_empty, merged, renamed
from modelplane.services.dataflow.errors import (
    JoinTimeoutError,
    NoOutputError,
    StepCallError,
    StepFailedError,
)

log = structlog.get_logger(__name__)

# The owner named in a JoinTimeoutError of the pipeline's output join.
OUTPUT = "output"


class PipelineRunner:
    """Runs requests of one compiled pipeline; owns the step batchers its requests share."""

    def __init__(self, pipeline: CompiledPipeline, call: StepCaller) -> None:
        self.pipeline = pipeline
        self._call = call
        self._batchers = {
            step.name: StepBatcher(step.name, step.model, step.batch, call)
            for step in pipeline.steps
            if step.batch is not None
        }

    async def run(
        self,
        request: dict[str, Any],
        *,
        request_id: str,
        on_output: Callable[[dict[str, Any]], None],
        observer: StepObserver | None = None,
    ) -> None:
        """Run ``request``; ``on_output`` gets the pipeline's answer once, as soon as it is known.

        Returns when nothing more can happen. Raises StepFailedError, JoinTimeoutError or
        NoOutputError (InvalidError for a malformed request); once the answer is out, errors of
        the remaining steps are logged instead."""
        inputs = _request_inputs(request, self.pipeline.name)
        run = _Run(self, request, inputs, request_id, on_output, observer)
        await run.execute()

    async def call_step(self, step: CompiledStep, request: dict[str, Any]) -> dict[str, Any]:
        batcher = self._batchers.get(step.name)
        if batcher is not None:
            return await batcher.call(request)
        return await self._call(step.model, request)

    async def close(self) -> None:
        """Fail the calls waiting for a batch and cancel batches in flight (idempotent)."""
        for batcher in self._batchers.values():
            await batcher.close()


def _request_inputs(request: Any, pipeline: str) -> list[Tensor]:
    if not isinstance(request, dict):
        raise InvalidError(f"pipeline {pipeline}: the request must be a V2 inference request object")
    inputs = request.get("inputs", [])
    if not isinstance(inputs, list):
        raise InvalidError(f"pipeline {pipeline}: must be a list of tensors", field="inputs")
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise InvalidError(
                f"pipeline {pipeline}: each input must be a tensor object with a name",
                field=f"inputs[{index}]",
            )
    return inputs


@dataclass(slots=True)
class _StepState:
    fired: int = 0
    running: bool = False
    # versions of the step's input sources when it last fired: a newer one may fire it again
    seen: dict[Source, int] = field(default_factory=dict)
    # loop time of the first arrival for the inputs / triggers join since the last firing
    inputs_since: float | None = None
    triggers_since: float | None = None


@dataclass(frozen=True, slots=True)
class _Outcome:
    response: dict[str, Any] | None = None
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class _Decision:
    fire: bool = False
    # loop time at which a waiting join settles; None = not waiting
    deadline: float | None = None


_BLOCKED = _Decision()
_FIRE = _Decision(fire=True)


class _Run:
    def __init__(
        self,
        runner: PipelineRunner,
        request: dict[str, Any],
        inputs: list[Tensor],
        request_id: str,
        on_output: Callable[[dict[str, Any]], None],
        observer: StepObserver | None,
    ) -> None:
        self._runner = runner
        self._pipeline = runner.pipeline
        self._name = runner.pipeline.name
        spec = runner.pipeline.spec
        self._revisits = spec.max_step_revisits if spec.allow_cycles else 0
        self._request_id = request_id
        self._answer_id = request.get("id") or request_id
        self._parameters = request.get("parameters")
        self._on_output = on_output
        self._observer = observer
        self._values: dict[Source, list[Tensor]] = {PIPELINE_INPUTS: inputs}
        self._versions: dict[Source, int] = {PIPELINE_INPUTS: 1}
        self._answers: dict[str, dict[str, Any]] = {}
        self._states = {step.name: _StepState() for step in self._pipeline.steps}
        self._output_since: float | None = None
        self._delivered = False
        # Whether the last sweep met a partial join (only those need the settling sweep).
        self._partial = False
        self._loop = asyncio.get_running_loop()
        self._tasks: dict[asyncio.Task[_Outcome], str] = {}
        self._resolved: dict[tuple[TensorRef, int], list[Tensor]] = {}
        self._supervisor = TaskSupervisor(f"pipeline-{self._name}-{request_id}")

    # ---- the loop ------------------------------------------------------------------------------
    async def execute(self) -> None:
        try:
            while True:
                try:
                    deadline = self._advance()
                except JoinTimeoutError as exc:
                    if not self._delivered:
                        raise
                    log.warning(
                        "pipeline_side_join_timed_out", pipeline=self._name, step=exc.step, error=str(exc)
                    )
                    return
                if not self._tasks:
                    break
                timeout = None if deadline is None else max(0.0, deadline - self._loop.time())
                done, _ = await asyncio.wait(
                    self._tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    step = self._tasks.pop(task)
                    outcome = task.result()
                    if outcome.error is not None:
                        if not self._delivered:
                            raise outcome.error
                        log.warning(
                            "pipeline_side_step_failed",
                            pipeline=self._name,
                            step=step,
                            error=str(outcome.error),
                        )
                        return
                    assert outcome.response is not None
                    self._answered(step, outcome.response)
            if not self._delivered:
                raise NoOutputError(self._why_no_output())
        finally:
            # First error wins: whatever still runs is cancelled.
            await self._supervisor.close()

    def _advance(self) -> float | None:
        """Fire what can fire, deliver the output when it can; the next deadline to wake at."""
        while True:
            self._partial = False
            while self._sweep(settle=False)[0]:
                pass
            if not self._partial:
                # Only partial joins wait or settle: nothing more to do until a step answers.
                return None
            fired, deadlines = self._sweep(settle=True)
            if not fired:
                return min(deadlines, default=None)

    def _sweep(self, *, settle: bool) -> tuple[bool, list[float]]:
        now = self._loop.time()
        fired = False
        deadlines: list[float] = []
        for step in self._pipeline.steps:
            decision = self._step_decision(step, now, settle)
            if decision.fire:
                self._fire(step)
                fired = True
            elif decision.deadline is not None:
                deadlines.append(decision.deadline)
        if not self._delivered:
            decision = self._output_decision(now, settle)
            if decision.fire:
                self._deliver()
            elif decision.deadline is not None:
                deadlines.append(decision.deadline)
        return fired, deadlines

    # ---- values --------------------------------------------------------------------------------
    def _resolve(self, ref: TensorRef) -> list[Tensor]:
        """The non-empty tensors ``ref`` covers now (empty tensors count as absent).

        Remembered per version of the source: every sweep asks again for every step's
        references, while the values change only when a step answers."""
        source = source_of(ref)
        key = (ref, self._versions.get(source, 0))
        found = self._resolved.get(key)
        if found is None:
            found = [
                t
                for t in self._values.get(source, ())
                if ref.covers(str(t.get("name", ""))) and not is_empty(t)
            ]
            self._resolved[key] = found
        return found

    def _satisfied(self, ref: TensorRef) -> bool:
        return bool(self._resolve(ref))

    def _is_new(self, ref: TensorRef, state: _StepState) -> bool:
        source = source_of(ref)
        return self._versions.get(source, 0) > state.seen.get(source, 0)

    def _gather(self, refs: Sequence[TensorRef], tensor_map: Mapping[str, str]) -> list[Tensor]:
        """The tensors of ``refs`` in reference order, renamed by ``tensor_map``."""
        out: list[Tensor] = []
        for ref in refs:
            for tensor in self._resolve(ref):
                name = str(tensor.get("name", ""))
                key = TensorRef(ref.pipeline, ref.step, ref.port, name).text(self._name)
                out.append(renamed(tensor, tensor_map.get(key, name)))
        return merged(out)

    def _set(self, source: Source, tensors: list[Tensor]) -> None:
        self._values[source] = tensors
        self._versions[source] = self._versions.get(source, 0) + 1

    # ---- liveness ------------------------------------------------------------------------------
    def _can_fire_again(self, state: _StepState) -> bool:
        return state.fired <= self._revisits

    def _live(self, ref: TensorRef) -> bool:
        """Whether a running or still-possible step may yet produce ``ref``."""
        return bool(ref.step) and self._live_step(ref.step, set())

    def _live_step(self, name: str, visiting: set[str]) -> bool:
        state = self._states[name]
        if state.running:
            return True
        if name in visiting or not self._can_fire_again(state):
            return False
        visiting.add(name)
        return any(self._live_step(up, visiting) for up in self._pipeline.step(name).upstream())

    # ---- joins ---------------------------------------------------------------------------------
    def _join(
        self, owner: str, join: Join, satisfied: Sequence[bool], since: float | None, now: float, settle: bool
    ) -> _Decision:
        state = join_state(join.join_type, satisfied)
        if state is JoinState.READY:
            return _FIRE
        if state is JoinState.NONE:
            return _BLOCKED
        if not settle:
            self._partial = True
            return _BLOCKED
        missing = [ref for ref, ok in zip(join.refs, satisfied, strict=True) if not ok]
        outer = join.join_type == "outer"
        if not any(self._live(ref) for ref in missing):
            # Nothing can bring the rest: outer answers with what it has; inner never fires.
            return _FIRE if outer else _BLOCKED
        assert since is not None
        deadline = since + join.window_ms / 1000
        if now < deadline:
            return _Decision(deadline=deadline)
        if outer:
            return _FIRE
        raise JoinTimeoutError(owner, join.window_ms, tuple(ref.text(self._name) for ref in missing))

    def _step_decision(self, step: CompiledStep, now: float, settle: bool) -> _Decision:
        state = self._states[step.name]
        if state.running or not self._can_fire_again(state):
            return _BLOCKED
        inputs = [self._satisfied(ref) for ref in step.inputs.refs]
        if state.fired and not any(
            ok and self._is_new(ref, state) for ref, ok in zip(step.inputs.refs, inputs, strict=True)
        ):
            return _BLOCKED
        triggers = [self._satisfied(ref) for ref in step.triggers.refs]
        if any(inputs) and state.inputs_since is None:
            state.inputs_since = now
        if any(triggers) and state.triggers_since is None:
            state.triggers_since = now
        first = self._join(step.name, step.inputs, inputs, state.inputs_since, now, settle)
        if not first.fire and first.deadline is None:
            return _BLOCKED
        second = self._join(step.name, step.triggers, triggers, state.triggers_since, now, settle)
        if first.fire and second.fire:
            return _FIRE
        if not second.fire and second.deadline is None:
            return _BLOCKED
        return _Decision(deadline=min(d for d in (first.deadline, second.deadline) if d is not None))

    def _output_decision(self, now: float, settle: bool) -> _Decision:
        join = self._pipeline.output.join
        satisfied = [self._satisfied(ref) for ref in join.refs]
        if any(satisfied) and self._output_since is None:
            self._output_since = now
        return self._join(OUTPUT, join, satisfied, self._output_since, now, settle)

    # ---- steps and output ----------------------------------------------------------------------
    def _fire(self, step: CompiledStep) -> None:
        state = self._states[step.name]
        refs = step.inputs.refs
        if step.inputs.join_type == "any" and state.fired:
            # A revisit through an ``any`` join takes only what is new since the last firing.
            refs = tuple(ref for ref in refs if self._is_new(ref, state))
        tensors = self._gather(refs, step.tensor_map)
        state.fired += 1
        state.running = True
        state.seen = {source_of(ref): self._versions.get(source_of(ref), 0) for ref in step.inputs.refs}
        state.inputs_since = state.triggers_since = None
        self._set((step.name, "inputs"), tensors)
        request: dict[str, Any] = {"id": self._request_id, "inputs": tensors}
        if self._parameters is not None:
            request["parameters"] = self._parameters
        task = self._supervisor.spawn(f"{step.name}#{state.fired}", self._call(step, request))
        self._tasks[task] = step.name

    async def _call(self, step: CompiledStep, request: dict[str, Any]) -> _Outcome:
        if self._observer is not None:
            self._observer.step_called(step.name, request)
        try:
            response = await self._runner.call_step(step, request)
            outputs = response.get("outputs") if isinstance(response, dict) else None
            if not isinstance(outputs, list) or not all(isinstance(t, dict) for t in outputs):
                raise StepCallError(step.model, 502, "answered without an outputs list of tensors")
        except StepCallError as exc:
            return _Outcome(error=StepFailedError(step.name, exc))
        except Exception as exc:  # a bug below us: the run re-raises it as it is
            return _Outcome(error=exc)
        if self._observer is not None:
            self._observer.step_answered(step.name, response)
        return _Outcome(response=response)

    def _answered(self, step: str, response: dict[str, Any]) -> None:
        self._states[step].running = False
        self._answers[step] = response
        self._set((step, "outputs"), list(response["outputs"]))

    def _deliver(self) -> None:
        output = self._pipeline.output
        response: dict[str, Any] = {
            "model_name": self._name,
            "id": self._answer_id,
            "outputs": self._gather(output.join.refs, output.tensor_map),
        }
        parameters: dict[str, Any] = {}
        for ref in output.join.refs:
            answer = self._answers.get(ref.step) if ref.port == "outputs" else None
            if answer is not None and isinstance(answer.get("parameters"), dict) and self._satisfied(ref):
                parameters.update(answer["parameters"])
        if parameters:
            response["parameters"] = parameters
        self._delivered = True
        self._on_output(response)

    # ---- explaining a missing output -----------------------------------------------------------
    def _why_no_output(self) -> str:
        join = self._pipeline.output.join
        waited = ", ".join(ref.text(self._name) for ref in join.refs)
        reasons = [
            f"pipeline {self._name} produced no output: its output waits for {waited} ({join.join_type} join)"
        ]
        reasons.extend(dict.fromkeys(self._why_missing(ref) for ref in join.refs if not self._satisfied(ref)))
        return "; ".join(reasons)

    def _why_missing(self, ref: TensorRef) -> str:
        if not ref.step:
            return f"the request has no non-empty input tensor {ref.tensor or ''}".rstrip()
        state = self._states[ref.step]
        if not state.fired:
            step = self._pipeline.step(ref.step)
            missing = [
                f"its {kind} {r.text(self._name)} was never produced"
                for kind, join in (("input", step.inputs), ("trigger", step.triggers))
                for r in join.refs
                if not self._satisfied(r)
            ]
            return f"{ref.step} never ran" + (f": {' and '.join(missing)}" if missing else "")
        got = [str(t.get("name", "")) for t in self._values.get(source_of(ref), ()) if not is_empty(t)]
        verb = "was sent" if ref.port == "inputs" else "answered"
        what = f"no tensor {ref.tensor}" if ref.tensor else "only empty tensors"
        return f"{ref.step} {verb} {what} (non-empty: {', '.join(got) or 'none'})"
