"""The pipeline engine runs one request with Seldon v2's semantics (Python models, no I/O)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest

from modelplane.libs.errors import InvalidError
from modelplane.services.dataflow.engine import PipelineRunner
from modelplane.services.dataflow.errors import JoinTimeoutError, NoOutputError, StepFailedError
from tests.dataflow.engine.models import (
    Models,
    add,
    by_name,
    counter,
    double,
    echo,
    failing,
    negate,
    pipeline,
    router,
    tensor,
)

TWO_INPUTS = {"inputs": [tensor("INPUT0", [1, 2]), tensor("INPUT1", [3, 4])]}


class Outputs:
    """The on_output callback: keeps each answer and signals the first."""

    def __init__(self) -> None:
        self.answers: list[dict[str, Any]] = []
        self.event = asyncio.Event()

    def __call__(self, response: dict[str, Any]) -> None:
        self.answers.append(response)
        self.event.set()


class Recorder:
    """A StepObserver keeping what it saw, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.answered: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def step_called(self, step: str, request: dict[str, Any]) -> None:
        self.events.append(("called", step, request))

    def step_answered(self, step: str, response: dict[str, Any]) -> None:
        self.events.append(("answered", step, response))
        self.answered[step].set()


async def run_once(
    runner: PipelineRunner, request: dict[str, Any], observer: Recorder | None = None
) -> dict[str, Any]:
    outputs = Outputs()
    await runner.run(request, request_id="req-1", on_output=outputs, observer=observer)
    assert len(outputs.answers) == 1
    return outputs.answers[0]


CHAIN: dict[str, Any] = {
    "steps": [
        {"name": "tfsimple1"},
        {
            "name": "tfsimple2",
            "inputs": ["tfsimple1"],
            "tensorMap": {"tfsimple1.outputs.OUTPUT0": "INPUT0", "tfsimple1.outputs.OUTPUT1": "INPUT1"},
        },
    ],
    "output": {"steps": ["tfsimple2"]},
}


async def test_chain_with_tensor_map_feeds_renamed_tensors_to_the_next_step() -> None:
    """A chain renames the first step's outputs by tensorMap and answers the last step's outputs."""
    models = Models(tfsimple1=add, tfsimple2=add)
    runner = PipelineRunner(pipeline("tfsimples", CHAIN), models)
    answer = await run_once(runner, TWO_INPUTS)
    assert answer["model_name"] == "tfsimples"
    assert answer["id"] == "req-1"
    # tfsimple1: [4, 6], [-2, -2]; tfsimple2 adds and subtracts those
    assert by_name(answer) == {"OUTPUT0": [2, 4], "OUTPUT1": [6, 8]}
    (second,) = models.called("tfsimple2")
    assert [t["name"] for t in second["inputs"]] == ["INPUT0", "INPUT1"]
    assert second["id"] == "req-1"


async def test_step_requests_carry_the_request_parameters_and_the_answer_its_id() -> None:
    """Steps get the pipeline request's parameters; the answer keeps the request's own id."""
    models = Models(tfsimple1=add, tfsimple2=add)
    runner = PipelineRunner(pipeline("tfsimples", CHAIN), models)
    answer = await run_once(runner, {**TWO_INPUTS, "id": "mine", "parameters": {"content_type": "np"}})
    assert answer["id"] == "mine"
    assert all(request["parameters"] == {"content_type": "np"} for _, request in models.calls)


async def test_observer_sees_each_call_before_it_and_its_answer_after() -> None:
    """The observer hears step_called with the request sent and step_answered with the answer."""
    models = Models(tfsimple1=add, tfsimple2=add)
    recorder = Recorder()
    await run_once(PipelineRunner(pipeline("tfsimples", CHAIN), models), TWO_INPUTS, recorder)
    assert [(kind, step) for kind, step, _ in recorder.events] == [
        ("called", "tfsimple1"),
        ("answered", "tfsimple1"),
        ("called", "tfsimple2"),
        ("answered", "tfsimple2"),
    ]
    assert recorder.events[0][2] == models.called("tfsimple1")[0]
    assert by_name(recorder.events[1][2]) == {"OUTPUT0": [4, 6], "OUTPUT1": [-2, -2]}


async def test_default_output_is_the_last_step() -> None:
    """Without output.steps the pipeline answers the last step's outputs."""
    spec = {"steps": [{"name": "a"}, {"name": "b", "inputs": ["a"]}]}
    answer = await run_once(PipelineRunner(pipeline("p", spec), Models(a=double, b=double)), TWO_INPUTS)
    assert by_name(answer) == {"OUTPUT0": [4, 8]}


JOIN: dict[str, Any] = {
    "steps": [
        {"name": "tfsimple1"},
        {"name": "tfsimple2"},
        {
            "name": "tfsimple3",
            "inputs": ["tfsimple1.outputs.OUTPUT0", "tfsimple2.outputs.OUTPUT1"],
            "tensorMap": {"tfsimple1.outputs.OUTPUT0": "INPUT0", "tfsimple2.outputs.OUTPUT1": "INPUT1"},
        },
    ],
    "output": {"steps": ["tfsimple3"]},
}


async def test_inner_join_of_two_steps_sends_both_tensors() -> None:
    """An inner join fires once both upstream tensors arrived, each renamed by tensorMap."""
    models = Models(tfsimple1=add, tfsimple2=add, tfsimple3=add)
    answer = await run_once(PipelineRunner(pipeline("join", JOIN), models), TWO_INPUTS)
    # INPUT0 = [4, 6] (sum), INPUT1 = [-2, -2] (difference)
    assert by_name(answer) == {"OUTPUT0": [2, 4], "OUTPUT1": [6, 8]}
    assert len(models.called("tfsimple3")) == 1


async def test_inner_join_waits_for_a_slow_input() -> None:
    """An inner join does not fire with one input while the other's step is still running."""
    models = Models(tfsimple1=add, tfsimple2=add, tfsimple3=add)
    gate = models.hold("tfsimple2")
    recorder = Recorder()
    outputs = Outputs()
    runner = PipelineRunner(pipeline("join", JOIN), models)
    task = asyncio.create_task(runner.run(TWO_INPUTS, request_id="r", on_output=outputs, observer=recorder))
    await recorder.answered["tfsimple1"].wait()
    await models.started["tfsimple2"].wait()
    assert models.called("tfsimple3") == []
    gate.set()
    await task
    assert by_name(outputs.answers[0]) == {"OUTPUT0": [2, 4], "OUTPUT1": [6, 8]}


async def test_missing_input_of_an_inner_join_times_out_with_a_clear_error() -> None:
    """An inner join's window passing while an input's step still runs ends the request."""
    spec = {**JOIN, "steps": [*JOIN["steps"][:2], {**JOIN["steps"][2], "joinWindowMs": 50}]}
    models = Models(tfsimple1=add, tfsimple2=add, tfsimple3=add)
    models.hold("tfsimple2")  # never released: the run cancels it
    with pytest.raises(JoinTimeoutError) as caught:
        await run_once(PipelineRunner(pipeline("join", spec), models), TWO_INPUTS)
    assert caught.value.step == "tfsimple3"
    assert caught.value.missing == ("tfsimple2.outputs.OUTPUT1",)
    assert "tfsimple3" in str(caught.value)
    assert "tfsimple2.outputs.OUTPUT1" in str(caught.value)


OUTER: dict[str, Any] = {
    "steps": [
        {"name": "a"},
        {"name": "b"},
        {
            "name": "c",
            "inputs": ["a.outputs.OUTPUT0", "b.outputs.OUTPUT0"],
            "tensorMap": {"a.outputs.OUTPUT0": "A", "b.outputs.OUTPUT0": "B"},
            "inputsJoinType": "outer",
            "joinWindowMs": 50,
        },
    ],
    "output": {"steps": ["c"]},
}


async def test_outer_join_fires_with_what_arrived_within_the_window() -> None:
    """An outer join whose window passes fires with the tensors that arrived."""
    models = Models(a=double, b=negate, c=echo)
    gate = models.hold("b")
    outputs = Outputs()
    runner = PipelineRunner(pipeline("outer", OUTER), models)
    task = asyncio.create_task(runner.run(TWO_INPUTS, request_id="r", on_output=outputs))
    await outputs.event.wait()
    assert by_name(outputs.answers[0]) == {"A": [2, 4]}
    gate.set()  # b answers late; c has fired already and does not fire again
    await task
    assert len(models.called("c")) == 1
    assert len(outputs.answers) == 1


async def test_outer_join_fires_at_once_when_everything_arrived() -> None:
    """An outer join with every input present fires with all of them."""
    models = Models(a=double, b=negate, c=echo)
    spec = {**OUTER, "steps": [*OUTER["steps"][:2], {**OUTER["steps"][2], "joinWindowMs": 600_000}]}
    answer = await run_once(PipelineRunner(pipeline("outer", spec), models), TWO_INPUTS)
    assert by_name(answer) == {"A": [2, 4], "B": [-1, -2]}


async def test_outer_output_join_answers_what_arrived_within_the_window() -> None:
    """output stepsJoin outer answers with the steps that answered within its window."""
    spec = {
        "steps": [{"name": "a"}, {"name": "b"}],
        "output": {
            "steps": ["a", "b.outputs.OUTPUT0"],
            "stepsJoin": "outer",
            "joinWindowMs": 50,
            "tensorMap": {"b.outputs.OUTPUT0": "B"},
        },
    }
    models = Models(a=double, b=negate)
    gate = models.hold("b")
    outputs = Outputs()
    runner = PipelineRunner(pipeline("p", spec), models)
    task = asyncio.create_task(runner.run(TWO_INPUTS, request_id="r", on_output=outputs))
    await outputs.event.wait()
    assert by_name(outputs.answers[0]) == {"OUTPUT0": [2, 4]}
    gate.set()
    await task
    assert len(outputs.answers) == 1


CONDITIONAL: dict[str, Any] = {
    "steps": [
        {"name": "router"},
        {
            "name": "mul",
            "inputs": ["router.outputs.OUTPUT0"],
            "tensorMap": {"router.outputs.OUTPUT0": "INPUT0"},
        },
        {
            "name": "neg",
            "inputs": ["router.outputs.OUTPUT1"],
            "tensorMap": {"router.outputs.OUTPUT1": "INPUT0"},
        },
    ],
    "output": {"steps": ["mul", "neg"], "stepsJoin": "any"},
}


@pytest.mark.parametrize(
    ("value", "branch", "expected"), [([3, 4], "mul", [6, 8]), ([-3, -4], "neg", [3, 4])]
)
async def test_conditional_branch_runs_only_the_step_whose_tensor_was_emitted(
    value: list[int], branch: str, expected: list[int]
) -> None:
    """The router's emitted tensor selects the branch; the empty one fires nothing; stepsJoin any answers."""
    models = Models(router=router, mul=double, neg=negate)
    answer = await run_once(
        PipelineRunner(pipeline("conditional", CONDITIONAL), models), {"inputs": [tensor("INPUT0", value)]}
    )
    assert by_name(answer) == {"OUTPUT0": expected}
    assert [name for name, _ in models.calls] == ["router", branch]


async def test_untaken_branch_in_an_inner_output_explains_why_there_is_no_output() -> None:
    """With an inner output join, the branch never taken yields NoOutputError saying why."""
    spec = {**CONDITIONAL, "output": {"steps": ["mul", "neg"]}}
    models = Models(router=router, mul=double, neg=negate)
    with pytest.raises(NoOutputError) as caught:
        await run_once(
            PipelineRunner(pipeline("conditional", spec), models), {"inputs": [tensor("INPUT0", [1])]}
        )
    message = str(caught.value)
    assert "mul.outputs, neg.outputs" in message
    assert "neg never ran: its input router.outputs.OUTPUT1 was never produced" in message


TRIGGERS: dict[str, Any] = {
    "steps": [
        {
            "name": "mul",
            "inputs": ["trigger-joins.inputs.INPUT"],
            "triggers": ["trigger-joins.inputs.ok1", "trigger-joins.inputs.ok2"],
            "triggersJoinType": "any",
        },
        {"name": "neg", "inputs": ["trigger-joins.inputs.INPUT"], "triggers": ["trigger-joins.inputs.ok3"]},
    ],
    "output": {"steps": ["mul", "neg"], "stepsJoin": "any"},
}


@pytest.mark.parametrize(("trigger", "step", "expected"), [("ok2", "mul", [4]), ("ok3", "neg", [-2])])
async def test_trigger_join_gates_a_step_without_feeding_it(
    trigger: str, step: str, expected: list[int]
) -> None:
    """A step fires when its triggers join holds (any: one of them); trigger tensors are not sent."""
    models = Models(mul=double, neg=negate)
    request = {"inputs": [tensor("INPUT", [2]), tensor(trigger, [1])]}
    answer = await run_once(PipelineRunner(pipeline("trigger-joins", TRIGGERS), models), request)
    assert by_name(answer) == {"OUTPUT0": expected}
    assert [name for name, _ in models.calls] == [step]
    assert [t["name"] for t in models.calls[0][1]["inputs"]] == ["INPUT"]


async def test_empty_tensor_does_not_fire_a_step() -> None:
    """An input with a 0 in its shape is absent: the step never runs and there is no output."""
    spec = {"steps": [{"name": "a", "inputs": ["p.inputs.INPUT0"]}]}
    models = Models(a=double)
    with pytest.raises(NoOutputError) as caught:
        await run_once(
            PipelineRunner(pipeline("p", spec), models), {"inputs": [tensor("INPUT0", [], shape=[1, 0])]}
        )
    assert models.calls == []
    assert "a never ran: its input p.inputs.INPUT0 was never produced" in str(caught.value)


def cycle(limit_revisits: int) -> dict[str, Any]:
    return {
        "steps": [
            {
                "name": "counter",
                "inputs": ["loop.inputs.INPUT0", "counter.outputs.OUTPUT0"],
                "inputsJoinType": "any",
                "tensorMap": {"counter.outputs.OUTPUT0": "INPUT0"},
            }
        ],
        "output": {"steps": ["counter.outputs.DONE"]},
        "allowCycles": True,
        "maxStepRevisits": limit_revisits,
    }


async def test_cycle_runs_a_step_again_on_each_new_value_until_it_is_done() -> None:
    """With allowCycles a step fed by its own output runs again until it emits the output tensor."""
    models = Models(counter=counter(3))
    answer = await run_once(
        PipelineRunner(pipeline("loop", cycle(10)), models), {"inputs": [tensor("INPUT0", [0])]}
    )
    assert by_name(answer) == {"DONE": [3]}
    assert [r["inputs"][0]["data"] for r in models.called("counter")] == [[0], [1], [2], [3]]


async def test_cycle_is_bounded_by_max_step_revisits() -> None:
    """A step runs at most 1 + maxStepRevisits times per request, then stops without error."""
    models = Models(counter=counter(100))
    with pytest.raises(NoOutputError) as caught:
        await run_once(
            PipelineRunner(pipeline("loop", cycle(2)), models), {"inputs": [tensor("INPUT0", [0])]}
        )
    assert len(models.called("counter")) == 3
    assert "counter answered no tensor DONE" in str(caught.value)


async def test_failing_step_ends_the_request_with_its_error_and_cancels_the_others() -> None:
    """A step's model error ends the request with StepFailedError; running steps are cancelled."""
    spec = {"steps": [{"name": "slow"}, {"name": "fail"}], "output": {"steps": ["slow", "fail"]}}
    models = Models(slow=echo, fail=failing)
    models.hold("slow")  # never released: cancelled by the failure
    with pytest.raises(StepFailedError) as caught:
        await run_once(PipelineRunner(pipeline("p", spec), models), TWO_INPUTS)
    assert caught.value.step == "fail"
    assert caught.value.http_status == 500
    assert "boom" in str(caught.value)


async def test_side_step_still_finishes_after_the_output_was_delivered() -> None:
    """A step not feeding the output runs on after on_output; run() returns when it is done."""
    spec = {"steps": [{"name": "model"}, {"name": "drift"}], "output": {"steps": ["model"]}}
    models = Models(model=double, drift=echo)
    gate = models.hold("drift")
    recorder = Recorder()
    outputs = Outputs()
    task = asyncio.create_task(
        PipelineRunner(pipeline("p", spec), models).run(
            TWO_INPUTS, request_id="r", on_output=outputs, observer=recorder
        )
    )
    await outputs.event.wait()
    assert not task.done()
    gate.set()
    await task
    assert recorder.answered["drift"].is_set()


async def test_side_step_failure_after_the_output_is_not_raised() -> None:
    """Once the answer is out, a failing side step is logged and run() returns normally."""
    spec = {"steps": [{"name": "model"}, {"name": "fail"}], "output": {"steps": ["model"]}}
    models = Models(model=double, fail=failing)
    gate = models.hold("fail")
    outputs = Outputs()
    task = asyncio.create_task(
        PipelineRunner(pipeline("p", spec), models).run(TWO_INPUTS, request_id="r", on_output=outputs)
    )
    await outputs.event.wait()
    gate.set()
    await task
    assert len(outputs.answers) == 1


async def test_request_without_tensor_objects_is_invalid() -> None:
    """A request whose inputs are not tensor objects is refused naming the field."""
    runner = PipelineRunner(pipeline("tfsimples", CHAIN), Models(tfsimple1=add, tfsimple2=add))
    with pytest.raises(InvalidError) as caught:
        await run_once(runner, {"inputs": ["INPUT0"]})
    assert caught.value.field == "inputs[0]"


async def test_a_steps_inputs_can_feed_another_step_while_it_still_runs() -> None:
    """``a.inputs`` is what step a was sent: it is available as soon as a is called."""
    spec = {
        "steps": [{"name": "a"}, {"name": "b", "inputs": ["a.inputs.INPUT1"]}],
        "output": {"steps": ["b"]},
    }
    models = Models(a=double, b=negate)
    gate = models.hold("a")
    outputs = Outputs()
    task = asyncio.create_task(
        PipelineRunner(pipeline("p", spec), models).run(TWO_INPUTS, request_id="r", on_output=outputs)
    )
    await outputs.event.wait()
    assert by_name(outputs.answers[0]) == {"OUTPUT0": [-3, -4]}
    gate.set()
    await task
