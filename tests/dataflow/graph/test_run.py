"""InferenceGraph semantics of GraphRunner (KServe's router), on an in-process GraphCaller."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
import pytest

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.types import GraphNode, GraphStep, InferenceGraphSpec
from modelplane.services.dataflow.errors import StepCallError
from modelplane.services.dataflow.graph.run import GraphAnswer, GraphRunner

Service = Callable[[Any, Mapping[str, str]], Awaitable[tuple[int, Any]]]


class FakeCaller:
    """Services as plain async functions (JSON in, (status, JSON or bytes) out); records calls."""

    def __init__(self, services: Mapping[str, Service]) -> None:
        self.services = dict(services)
        self.calls: list[tuple[str, Any, dict[str, str]]] = []

    async def _call(self, target: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        doc = orjson.loads(body)
        self.calls.append((target, doc, dict(headers)))
        status, answer = await self.services[target](doc, headers)
        return status, answer if isinstance(answer, bytes) else orjson.dumps(answer)

    async def call_model(self, model: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        return await self._call(model, body, headers)

    async def call_url(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        return await self._call(url, body, headers)

    def targets(self) -> list[str]:
        return [target for target, _, _ in self.calls]


def answers(status: int, doc: Any) -> Service:
    async def service(request: Any, headers: Mapping[str, str]) -> tuple[int, Any]:
        return status, doc

    return service


def tagging(tag: str) -> Service:
    """Answers with the request plus a trail of the services it went through."""

    async def service(request: Any, headers: Mapping[str, str]) -> tuple[int, Any]:
        return 200, {"trail": [*request.get("trail", []), tag], "seen": request}

    return service


def unreachable(status: int) -> Service:
    async def service(request: Any, headers: Mapping[str, str]) -> tuple[int, Any]:
        raise StepCallError("down", status, "cannot connect")

    return service


def graph(**nodes: GraphNode) -> InferenceGraphSpec:
    return InferenceGraphSpec(nodes=dict(nodes))


def step(service: str = "", **fields: Any) -> GraphStep:
    return GraphStep(service_name=service, **fields)


async def run(spec: InferenceGraphSpec, caller: FakeCaller, body: Any, **kwargs: Any) -> tuple[int, Any]:
    runner = GraphRunner("g", spec, caller, **kwargs)
    answer = await runner.run(orjson.dumps(body), {"traceparent": "00-abc-def-01"})
    assert isinstance(answer, GraphAnswer)
    return answer.status, orjson.loads(answer.body)


REQUEST = {"inputs": [{"name": "x", "datatype": "INT64", "shape": [1], "data": [3]}]}


# ---- Sequence ---------------------------------------------------------------------------------------
async def test_sequence_passes_responses_with_dollar_response() -> None:
    """With data $response each step gets the previous answer; the node answers with the last."""
    caller = FakeCaller({"a": tagging("a"), "b": tagging("b")})
    spec = graph(root=GraphNode("Sequence", (step("a"), step("b", data="$response"))))
    status, body = await run(spec, caller, REQUEST)
    assert status == 200
    assert body["trail"] == ["a", "b"]
    assert caller.calls[1][1]["trail"] == ["a"]


async def test_sequence_dollar_request_sends_the_node_input() -> None:
    """Without data (or with $request) a step gets the node's input, not the previous answer."""
    caller = FakeCaller({"a": tagging("a"), "b": tagging("b"), "c": tagging("c")})
    spec = graph(root=GraphNode("Sequence", (step("a"), step("b"), step("c", data="$request"))))
    status, body = await run(spec, caller, REQUEST)
    assert status == 200
    assert body["trail"] == ["c"]
    assert [call[1] for call in caller.calls] == [REQUEST, REQUEST, REQUEST]


async def test_sequence_condition_not_matching_ends_with_previous_answer() -> None:
    """A step whose condition the previous answer does not match ends the node with that answer."""
    caller = FakeCaller({"classify": answers(200, {"predictions": ["cat"]}), "breed": tagging("breed")})
    spec = graph(
        root=GraphNode(
            "Sequence",
            (
                step("classify"),
                step("breed", data="$response", condition='[@this].#(predictions.0=="dog")'),
            ),
        )
    )
    status, body = await run(spec, caller, REQUEST)
    assert (status, body) == (200, {"predictions": ["cat"]})
    assert caller.targets() == ["classify"]


async def test_sequence_condition_matching_runs_the_step() -> None:
    """A step whose condition the previous answer matches runs."""
    caller = FakeCaller({"classify": answers(200, {"predictions": ["dog"]}), "breed": tagging("breed")})
    spec = graph(
        root=GraphNode(
            "Sequence",
            (step("classify"), step("breed", data="$response", condition='[@this].#(predictions.0=="dog")')),
        )
    )
    status, body = await run(spec, caller, REQUEST)
    assert status == 200
    assert body["trail"] == ["breed"]


async def test_sequence_first_step_condition_is_checked_on_the_node_input() -> None:
    """The first step's condition is checked against the node's input."""
    caller = FakeCaller({"a": tagging("a")})
    spec = graph(root=GraphNode("Sequence", (step("a", condition="instances"),)))
    assert await run(spec, caller, REQUEST) == (200, REQUEST)
    assert caller.calls == []
    status, body = await run(spec, caller, {"instances": [1]})
    assert (status, body["trail"]) == (200, ["a"])


async def test_sequence_hard_failure_stops_with_its_answer() -> None:
    """A Hard step answering non-2xx ends the node with its status and body."""
    caller = FakeCaller({"a": answers(503, {"error": "overloaded"}), "b": tagging("b")})
    spec = graph(root=GraphNode("Sequence", (step("a", dependency="Hard"), step("b"))))
    assert await run(spec, caller, REQUEST) == (503, {"error": "overloaded"})
    assert caller.targets() == ["a"]


async def test_sequence_soft_failure_carries_on() -> None:
    """A Soft step answering non-2xx does not stop the sequence; its answer is carried on."""
    caller = FakeCaller({"a": answers(500, {"error": "boom"}), "b": tagging("b")})
    spec = graph(root=GraphNode("Sequence", (step("a"), step("b", data="$response"))))
    status, body = await run(spec, caller, REQUEST)
    assert status == 200
    assert body["seen"] == {"error": "boom"}


async def test_sequence_soft_failure_as_last_step_is_the_answer() -> None:
    """The node answers with its last step's answer, a failure included."""
    caller = FakeCaller({"a": tagging("a"), "b": answers(422, {"error": "bad"})})
    spec = graph(root=GraphNode("Sequence", (step("a"), step("b"))))
    assert await run(spec, caller, REQUEST) == (422, {"error": "bad"})


# ---- Switch -------------------------------------------------------------------------------------------
async def test_switch_runs_the_first_matching_step() -> None:
    """Switch runs only the first step whose condition matches the input."""
    caller = FakeCaller({"small": tagging("small"), "big": tagging("big"), "other": tagging("other")})
    spec = graph(
        root=GraphNode(
            "Switch",
            (
                step("small", condition="[@this].#(inputs.0.data.0<5)"),
                step("big", condition="[@this].#(inputs.0.data.0>=5)"),
                step("other", condition="inputs"),
            ),
        )
    )
    status, body = await run(spec, caller, REQUEST)
    assert (status, body["trail"]) == (200, ["small"])
    assert caller.targets() == ["small"]


async def test_switch_without_a_match_is_404() -> None:
    """Switch answers 404 with a JSON error naming the graph and node when nothing matches."""
    caller = FakeCaller({"a": tagging("a")})
    spec = graph(root=GraphNode("Switch", (step("a", condition="instances"),)))
    status, body = await run(spec, caller, REQUEST)
    assert status == 404
    assert "g" in body["error"]
    assert "root" in body["error"]
    assert caller.calls == []


# ---- Ensemble ---------------------------------------------------------------------------------------
async def test_ensemble_runs_in_parallel_and_keys_answers_by_step_name() -> None:
    """Ensemble steps run at once on the same input; the answer is keyed by step name."""
    started: list[str] = []
    both_started = asyncio.Event()

    def waiting(tag: str) -> Service:
        async def service(request: Any, headers: Mapping[str, str]) -> tuple[int, Any]:
            started.append(tag)
            if len(started) == 2:
                both_started.set()
            await both_started.wait()  # only returns if the other step runs at the same time
            return 200, {"from": tag}

        return service

    caller = FakeCaller({"m1": waiting("m1"), "m2": waiting("m2")})
    spec = graph(root=GraphNode("Ensemble", (step("m1", name="first"), step("m2"))))
    status, body = await asyncio.wait_for(run(spec, caller, REQUEST), 10)
    assert status == 200
    assert body == {"first": {"from": "m1"}, "m2": {"from": "m2"}}
    assert [call[1] for call in caller.calls] == [REQUEST, REQUEST]


async def test_ensemble_hard_failure_is_the_answer() -> None:
    """A Hard Ensemble step answering non-2xx makes its answer the node's."""
    caller = FakeCaller({"ok": tagging("ok"), "bad": answers(500, {"error": "boom"})})
    spec = graph(root=GraphNode("Ensemble", (step("ok"), step("bad", dependency="Hard"))))
    assert await run(spec, caller, REQUEST) == (500, {"error": "boom"})


async def test_ensemble_soft_failure_is_kept_under_its_key() -> None:
    """A Soft Ensemble step's failure is part of the keyed answer."""
    caller = FakeCaller({"ok": answers(200, {"v": 1}), "bad": answers(500, {"error": "boom"})})
    spec = graph(root=GraphNode("Ensemble", (step("ok"), step("bad"))))
    assert await run(spec, caller, REQUEST) == (200, {"ok": {"v": 1}, "bad": {"error": "boom"}})


# ---- Splitter -----------------------------------------------------------------------------------------
async def test_splitter_follows_the_weights() -> None:
    """Over 1,000 requests each step's share is within 4 sigma of its weight."""
    caller = FakeCaller(
        {"a": answers(200, {"v": "a"}), "b": answers(200, {"v": "b"}), "c": answers(200, {"v": "c"})}
    )
    weights = {"a": 20, "b": 30, "c": 50}
    spec = graph(root=GraphNode("Splitter", tuple(step(name, weight=w) for name, w in weights.items())))
    runner = GraphRunner("g", spec, caller, rng=random.Random(7))
    requests = 1000
    for _ in range(requests):
        answer = await runner.run(orjson.dumps(REQUEST), {})
        assert answer.status == 200
    counts = Counter(caller.targets())
    for name, weight in weights.items():
        p = weight / 100
        sigma = math.sqrt(requests * p * (1 - p))
        assert abs(counts[name] - requests * p) <= 4 * sigma, (name, counts)


async def test_splitter_with_all_weight_on_one_step_always_picks_it() -> None:
    """A step with weight 100 is always chosen."""
    caller = FakeCaller({"a": tagging("a"), "b": tagging("b")})
    spec = graph(root=GraphNode("Splitter", (step("a", weight=0), step("b", weight=100))))
    runner = GraphRunner("g", spec, caller, rng=random.Random(1))
    for _ in range(50):
        await runner.run(orjson.dumps(REQUEST), {})
    assert set(caller.targets()) == {"b"}


# ---- nodes, URLs, errors, headers ----------------------------------------------------------------
async def test_nested_nodes_run_with_the_step_input() -> None:
    """A nodeName step runs that node with its input; its answer continues the parent."""
    caller = FakeCaller(
        {"pre": tagging("pre"), "x": tagging("x"), "y": tagging("y"), "post": tagging("post")}
    )
    spec = graph(
        root=GraphNode(
            "Sequence",
            (
                step("pre"),
                GraphStep(node_name="branch", data="$response"),
                step("post", data="$response"),
            ),
        ),
        branch=GraphNode("Switch", (step("x", condition='trail.#(=="nope")'), step("y", condition="trail"))),
    )
    status, body = await run(spec, caller, REQUEST)
    assert (status, body["trail"]) == (200, ["pre", "y", "post"])


async def test_nested_node_failure_counts_as_the_step_failure() -> None:
    """A nested node's non-2xx answer stops a Hard step like a model's would."""
    caller = FakeCaller({"after": tagging("after")})
    spec = graph(
        root=GraphNode("Sequence", (GraphStep(node_name="inner", dependency="Hard"), step("after"))),
        inner=GraphNode("Switch", (step("after", condition="nothing"),)),
    )
    status, body = await run(spec, caller, REQUEST)
    assert status == 404
    assert "inner" in body["error"]


async def test_service_url_steps_post_to_the_url() -> None:
    """A serviceUrl step goes to call_url with the step's input."""
    url = "http://127.0.0.1:1/score"
    caller = FakeCaller({url: tagging("url")})
    spec = graph(root=GraphNode("Sequence", (GraphStep(service_url=url),)))
    status, body = await run(spec, caller, REQUEST)
    assert (status, body["trail"]) == (200, ["url"])


async def test_non_json_success_is_502_naming_the_step() -> None:
    """A 2xx answer that is not JSON becomes a 502 naming the step."""
    caller = FakeCaller({"a": answers(200, b"<html>ok</html>")})
    spec = graph(root=GraphNode("Sequence", (step("a", name="scorer"),)))
    status, body = await run(spec, caller, REQUEST)
    assert status == 502
    assert "scorer" in body["error"]


async def test_non_json_failure_keeps_its_status_as_json_error() -> None:
    """A non-2xx answer that is not JSON keeps its status and becomes a JSON error."""
    caller = FakeCaller({"a": answers(503, b"upstream busy")})
    spec = graph(root=GraphNode("Sequence", (step("a"),)))
    status, body = await run(spec, caller, REQUEST)
    assert status == 503
    assert "upstream busy" in body["error"]


async def test_unreachable_step_ends_the_request() -> None:
    """A step that cannot be reached ends the whole request with its error, even a Soft one."""
    caller = FakeCaller({"down": unreachable(502), "b": tagging("b")})
    spec = graph(root=GraphNode("Sequence", (step("down"), step("b"))))
    status, body = await run(spec, caller, REQUEST)
    assert status == 502
    assert "down" in body["error"]
    assert "cannot connect" in body["error"]
    assert caller.targets() == ["down"]


async def test_unreachable_ensemble_step_ends_the_request() -> None:
    """An unreachable Ensemble step ends the request after the other steps finished."""
    caller = FakeCaller({"ok": tagging("ok"), "down": unreachable(504)})
    spec = graph(root=GraphNode("Ensemble", (step("ok"), step("down"))))
    status, _ = await run(spec, caller, REQUEST)
    assert status == 504


async def test_request_that_is_not_json_is_400() -> None:
    """A request body that is not JSON is answered 400 without calling anything."""
    caller = FakeCaller({})
    runner = GraphRunner("g", graph(root=GraphNode("Sequence", (step("a"),))), caller)
    answer = await runner.run(b"not json", {})
    assert answer.status == 400
    assert caller.calls == []


async def test_headers_are_propagated_but_hop_by_hop_ones_are_not() -> None:
    """traceparent and custom headers reach every step; hop-by-hop and length headers do not."""
    caller = FakeCaller({"a": tagging("a")})
    runner = GraphRunner("g", graph(root=GraphNode("Sequence", (step("a"),))), caller)
    headers = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "x-tenant": "t1",
        "Connection": "keep-alive",
        "content-length": "12",
        "transfer-encoding": "chunked",
    }
    await runner.run(orjson.dumps(REQUEST), headers)
    sent = caller.calls[0][2]
    assert sent["traceparent"] == headers["traceparent"]
    assert sent["x-tenant"] == "t1"
    assert sent["content-type"] == "application/json"
    assert not {"connection", "content-length", "transfer-encoding"} & {k.lower() for k in sent}


async def test_graph_timeout_answers_504() -> None:
    """A graph with timeoutSeconds answers 504 when its steps take longer."""
    never = asyncio.Event()

    async def stuck(request: Any, headers: Mapping[str, str]) -> tuple[int, Any]:
        await never.wait()
        return 200, {}

    spec = InferenceGraphSpec(nodes={"root": GraphNode("Sequence", (step("a"),))}, timeout_seconds=0.05)
    status, body = await run(spec, FakeCaller({"a": stuck}), REQUEST)
    assert status == 504
    assert "g" in body["error"]


def test_bad_condition_fails_at_construction_naming_the_step() -> None:
    """A malformed condition is an InvalidError when the runner is built, naming the step field."""
    spec = graph(root=GraphNode("Switch", (step("a", condition="a.#(b==1"),)))
    with pytest.raises(InvalidError) as caught:
        GraphRunner("g", spec, FakeCaller({}))
    assert caught.value.field == "spec.nodes.root.steps[0].condition"
