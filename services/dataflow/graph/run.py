"""Running a KServe InferenceGraph request, node by node, the way KServe's router does.

Design: a ``GraphRunner`` is built once per graph generation (conditions compiled then, so a bad
one fails the load, not a request) and runs each request from the ``root`` node. A node gets an
input (JSON bytes) and returns an ``_Answer`` (status, JSON bytes, parsed document); a step calls a
model through the gateway (``serviceName``), POSTs to a URL (``serviceUrl``) or runs another node
(``nodeName``), all through the injected ``GraphCaller``, so tests run graphs on plain functions.

Router semantics (KServe ``cmd/router``):

- Sequence: steps in order; a step gets the node's input, or with ``data: $response`` the
  previous step's answer. A step with a condition runs only when the previous answer (the node's
  input for the first step) matches it; otherwise the node ends with the previous answer. A non-2xx
  answer of a Hard step ends the node with it; a Soft one is carried on. The node answers with the
  last answer.
- Switch: the first step whose condition matches the node's input runs; none matches -> 404.
- Ensemble: every step in parallel on the node's input; the answer is an object keyed by step
  name (the service or node name when unnamed); a Hard step's non-2xx answer is the node's answer
  (the first such in step order).
- Splitter: one step chosen at random by weight (weights sum to 100).

Every answer is JSON: a 2xx answer that is not JSON is turned into a 502 naming the step; a non-2xx
answer that is not JSON is wrapped as ``{"error": text}`` with its status. A step whose target
could not be reached (the caller raised ``StepCallError``) ends the whole request with that error,
as KServe's router does when a call fails. The caller's headers go with every call except the
hop-by-hop ones and those describing the body (see ``forwarded_headers``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.types import GRAPH_ROOT_NODE, GraphNode, GraphStep, InferenceGraphSpec
from modelplane.services.dataflow.errors import StepCallError
from modelplane.services.dataflow.gateway_client import error_text
from modelplane.services.dataflow.graph import gjson

RESPONSE_DATA = "$response"
HARD = "Hard"
# Headers that describe one hop or the body, never forwarded (RFC 9110 section 7.6.1).
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
    }
)


class GraphCaller(Protocol):
    """Where a graph's steps go. Each returns the target's (status, body) whatever the status;
    ``StepCallError`` only when nothing was answered (unreachable, timed out)."""

    async def call_model(self, model: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]: ...

    async def call_url(self, url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]: ...


@dataclass(frozen=True, slots=True)
class GraphAnswer:
    """A graph request's answer: HTTP status and JSON body."""

    status: int
    body: bytes


@dataclass(slots=True)
class _Answer:
    status: int
    body: bytes
    doc: Any = field(default=None)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class _Stop(Exception):
    """Ends the whole request with ``answer`` (an unreachable step, a timeout)."""

    def __init__(self, answer: _Answer) -> None:
        super().__init__(answer.status)
        self.answer = answer


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's headers that go on to every step (trace context, auth, custom ones)."""
    out = {name: value for name, value in headers.items() if name.lower() not in _NOT_FORWARDED}
    if not any(name.lower() == "content-type" for name in out):
        out["content-type"] = "application/json"
    return out


def _error(status: int, message: str) -> _Answer:
    doc = {"error": message}
    return _Answer(status, orjson.dumps(doc), doc)


class GraphRunner:
    """Runs requests of the inference graph ``name`` (see the module docstring)."""

    def __init__(
        self, name: str, spec: InferenceGraphSpec, caller: GraphCaller, rng: random.Random | None = None
    ) -> None:
        if GRAPH_ROOT_NODE not in spec.nodes:
            raise InvalidError(f"inference graph {name} has no {GRAPH_ROOT_NODE!r} node", field="spec.nodes")
        for node_name, node in spec.nodes.items():
            for index, step in enumerate(node.steps):
                if step.condition:
                    try:
                        gjson.compile_path(step.condition)
                    except InvalidError as exc:
                        raise InvalidError(
                            exc.message, field=f"spec.nodes.{node_name}.steps[{index}].condition"
                        ) from None
        self.name = name
        self._spec = spec
        self._caller = caller
        self._rng = rng or random.Random()

    async def run(self, body: bytes, headers: Mapping[str, str]) -> GraphAnswer:
        """The graph's answer to one request (errors are answers too; this does not raise for them)."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = _error(400, f"inference graph {self.name}: the request body is not JSON")
            return GraphAnswer(answer.status, answer.body)
        call_headers = forwarded_headers(headers)
        timeout = self._spec.timeout_seconds or None
        try:
            async with asyncio.timeout(timeout):
                answer = await self._node(GRAPH_ROOT_NODE, _Answer(200, body, doc), call_headers)
        except _Stop as stop:
            answer = stop.answer
        except TimeoutError:
            if timeout is None:
                raise
            answer = _error(504, f"inference graph {self.name}: no answer within {timeout:g} s")
        return GraphAnswer(answer.status, answer.body)

    # ---- nodes ------------------------------------------------------------------------------------
    async def _node(self, node_name: str, given: _Answer, headers: Mapping[str, str]) -> _Answer:
        node = self._spec.nodes[node_name]
        router = node.router_type
        if router == "Sequence":
            return await self._sequence(node_name, node, given, headers)
        if router == "Switch":
            return await self._switch(node_name, node, given, headers)
        if router == "Ensemble":
            return await self._ensemble(node_name, node, given, headers)
        if router == "Splitter":
            return await self._step(node_name, self._pick(node), given, headers)
        return _error(500, f"inference graph {self.name}: node {node_name} has unknown routerType {router!r}")

    async def _sequence(
        self, node_name: str, node: GraphNode, given: _Answer, headers: Mapping[str, str]
    ) -> _Answer:
        previous = given
        for step in node.steps:
            if step.condition and not gjson.matches(previous.doc, step.condition):
                return previous
            step_input = previous if step.data == RESPONSE_DATA else given
            answer = await self._step(node_name, step, step_input, headers)
            if not answer.ok and step.dependency == HARD:
                return answer
            previous = answer
        return previous

    async def _switch(
        self, node_name: str, node: GraphNode, given: _Answer, headers: Mapping[str, str]
    ) -> _Answer:
        for step in node.steps:
            # A step without a condition (validation requires one) always matches.
            if not step.condition or gjson.matches(given.doc, step.condition):
                return await self._step(node_name, step, given, headers)
        return _error(
            404,
            f"inference graph {self.name}: no step of Switch node {node_name} matches the request",
        )

    async def _ensemble(
        self, node_name: str, node: GraphNode, given: _Answer, headers: Mapping[str, str]
    ) -> _Answer:
        async def one(step: GraphStep) -> tuple[_Answer, bool]:
            # A stop is returned, not raised, so the other steps finish rather than being
            # cancelled mid-call, and the first stop in step order wins (as in KServe).
            try:
                return await self._step(node_name, step, given, headers), False
            except _Stop as stop:
                return stop.answer, True

        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(
                    one(step), name=f"graph-{self.name}-{node_name}-{step.name or step.target()}"
                )
                for step in node.steps
            ]
        merged: dict[str, Any] = {}
        for step, task in zip(node.steps, tasks, strict=True):
            answer, stopped = task.result()
            if stopped:
                raise _Stop(answer)
            if not answer.ok and step.dependency == HARD:
                return answer
            merged[step.name or step.target()] = answer.doc
        return _Answer(200, orjson.dumps(merged), merged)

    def _pick(self, node: GraphNode) -> GraphStep:
        """KServe's weighted choice: a number in 1..total, walked down the cumulative weights."""
        total = sum(max(step.weight, 0) for step in node.steps)
        if total <= 0:
            return node.steps[0]
        number = self._rng.randint(1, total)
        for step in node.steps:
            weight = max(step.weight, 0)
            if number <= weight:
                return step
            number -= weight
        return node.steps[-1]

    # ---- steps ------------------------------------------------------------------------------------
    async def _step(
        self, node_name: str, step: GraphStep, given: _Answer, headers: Mapping[str, str]
    ) -> _Answer:
        if step.node_name:
            return await self._node(step.node_name, given, headers)
        where = f"inference graph {self.name}, node {node_name}, step {step.name or step.target()}"
        try:
            if step.service_name:
                status, body = await self._caller.call_model(step.service_name, given.body, headers)
            else:
                status, body = await self._caller.call_url(step.service_url, given.body, headers)
        except StepCallError as exc:
            raise _Stop(_error(exc.status, f"{where}: {exc.message}")) from None
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            if 200 <= status < 300:
                return _error(502, f"{where}: {step.target()} answered with a body that is not JSON")
            return _error(status, f"{where}: {step.target()} answered {status}: {error_text(body)}")
        return _Answer(status, body, doc)
