"""OpenAI-compatible routes of the gateway, called with the official ``openai`` client.

The replicas are small OpenAI-compatible stand-in servers (aiohttp, on free ports) in place of
vLLM, because no LLM can run here: they answer chat completions, completions (both also as
server-sent event streams) and embeddings, echoing the model name and prompt they received, so
the tests see what the gateway forwarded. The gateway is the real App with its routes in a real
NATS KV.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats, free_port
from modelplane.libs.resources.convert import experiment_to_pb
from modelplane.libs.resources.types import (
    Experiment,
    ExperimentCandidate,
    ExperimentMirror,
    ExperimentSpec,
    LoadBalancing,
    Meta,
)
from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2
from modelplane.services.gateway.app import App
from tests.gateway.conftest import eventually, put_route, start_gateway

SERVER_MODEL = "llm_1"
STREAM_WORDS = ("alpha", "beta", "gamma", "delta")
# Seconds a step of a test may take before it fails (generous: 2 shared cores).
STEP_TIMEOUT = 10.0


@dataclass
class StandIn:
    """One OpenAI-compatible stand-in replica and what it received."""

    name: str
    port: int
    received: list[dict[str, Any]] = field(default_factory=list)
    # Set by a test to let a stream go on after its first chunk (proves nothing is buffered).
    release: asyncio.Event = field(default_factory=asyncio.Event)
    # Set by a test to drop the connection after a stream's first chunk.
    crash_mid_stream: bool = False

    def endpoint(self, index: int, adapters: tuple[str, ...] = ()) -> RouteEndpoint:
        http = f"127.0.0.1:{self.port}"
        return RouteEndpoint(
            server=self.name, index=index, http_endpoint=http, grpc_endpoint=http, adapters=adapters
        )

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        return app

    async def _body(self, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = orjson.loads(await request.read())
        self.received.append(body)
        return body

    def _echo(self, body: dict[str, Any], prompt: str) -> str:
        return f"{self.name} model={body['model']} prompt={prompt}"

    async def _stream(self, request: web.Request, chunks: list[dict[str, Any]]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, chunk in enumerate(chunks):
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            if index == 0 and self.crash_mid_stream:
                # As a replica that dies mid-generation: the connection drops without an end.
                assert request.transport is not None
                request.transport.abort()
                return response
            if index == 0:
                # The rest only once the client has the first chunk: a buffering gateway deadlocks.
                await asyncio.wait_for(self.release.wait(), STEP_TIMEOUT)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        first_user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        text = self._echo(body, first_user)
        if body.get("stream"):
            base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}
            return await self._stream(
                request,
                [
                    {**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                    for word in (text, *STREAM_WORDS)
                ],
            )
        message = {"role": "assistant", "content": text}
        return web.json_response(
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        )

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        if body["prompt"] == "":
            # As vLLM refuses an empty prompt: the gateway must pass this answer on as it is.
            error = {
                "message": "prompt must not be empty",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
            return web.json_response({"error": error}, status=400)
        text = self._echo(body, body["prompt"])
        base = {"id": "t1", "object": "text_completion", "created": 1, "model": body["model"]}
        if body.get("stream"):
            return await self._stream(
                request,
                [
                    {**base, "choices": [{"index": 0, "text": word, "finish_reason": None}]}
                    for word in (text, *STREAM_WORDS)
                ],
            )
        return web.json_response({**base, "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]})

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), float(i)]}
            for i, text in enumerate(inputs)
        ]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )


@pytest.fixture
async def stand_ins() -> AsyncIterator[list[StandIn]]:
    """Two stand-in replicas, each serving on its own free port."""
    servers = [StandIn(name=f"vllm{i}", port=free_port()) for i in range(2)]
    runners: list[web.AppRunner] = []
    try:
        for server in servers:
            runner = web.AppRunner(server.application(), shutdown_timeout=1)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", server.port).start()
        yield servers
    finally:
        for runner in runners:
            await runner.cleanup()


async def _route(js: JetStreamContext, gateway: App, route: Route) -> None:
    await put_route(js, route)

    async def routed() -> bool:
        return gateway.routes.get(route.model) == route

    await eventually(routed, STEP_TIMEOUT, f"route {route.model}")


@pytest.fixture
async def gateway(
    js: JetStreamContext, nats_server: EmbeddedNats, stand_ins: list[StandIn]
) -> AsyncIterator[App]:
    """The gateway with model "llm" on stand-in 0 (adapter "french") and stand-in 1 (none)."""
    app = await start_gateway(nats_server, hold_seconds=0.5)
    try:
        endpoints = (stand_ins[0].endpoint(0, adapters=("french",)), stand_ins[1].endpoint(1))
        await _route(js, app, Route(model="llm", versions=(RouteVersion(1, SERVER_MODEL, endpoints),)))
        yield app
    finally:
        await app.close()


@pytest.fixture
async def client(gateway: App) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official client pointed at the gateway; no retries, so errors show as they are."""
    async with openai.AsyncOpenAI(
        base_url=f"{gateway.http_url}/openai/v1", api_key="unused", max_retries=0, timeout=STEP_TIMEOUT
    ) as oai:
        yield oai


def _received(stand_ins: list[StandIn]) -> list[dict[str, Any]]:
    return [body for server in stand_ins for body in server.received]


# ---- forwarding ---------------------------------------------------------------------------------
async def test_chat_completion_is_forwarded_with_the_server_model_name(
    client: openai.AsyncOpenAI, stand_ins: list[StandIn]
) -> None:
    """A chat completion reaches a replica with ``model`` rewritten to the server-side name."""
    answer = await client.chat.completions.create(
        model="llm",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
    )
    content = answer.choices[0].message.content
    assert content is not None
    assert content.endswith(f"model={SERVER_MODEL} prompt=hello")
    assert [body["model"] for body in _received(stand_ins)] == [SERVER_MODEL]


async def test_completion_stream_is_relayed_chunk_by_chunk(
    client: openai.AsyncOpenAI, stand_ins: list[StandIn]
) -> None:
    """Streamed chunks reach the client in order, the first before the replica sends the rest."""
    stream = await client.completions.create(model="llm", prompt="once upon", stream=True)
    chunks = aiter(stream)
    first = await asyncio.wait_for(anext(chunks), STEP_TIMEOUT)
    assert first.choices[0].text.endswith(f"model={SERVER_MODEL} prompt=once upon")
    for server in stand_ins:
        server.release.set()
    rest = [chunk.choices[0].text async for chunk in chunks]
    assert rest == list(STREAM_WORDS)


async def test_a_stream_broken_by_the_replica_ends_without_done(
    client: openai.AsyncOpenAI, stand_ins: list[StandIn]
) -> None:
    """A replica dropping mid-stream ends the client's stream after the chunks already sent."""
    for server in stand_ins:
        server.crash_mid_stream = True
    stream = await client.completions.create(model="llm", prompt="fragile", stream=True)
    texts = [chunk.choices[0].text async for chunk in stream]
    assert len(texts) == 1
    assert texts[0].endswith("prompt=fragile")


async def test_chat_stream_is_relayed_in_order(client: openai.AsyncOpenAI, stand_ins: list[StandIn]) -> None:
    """A streamed chat completion passes every delta in order and ends cleanly."""
    for server in stand_ins:
        server.release.set()
    stream = await client.chat.completions.create(
        model="llm", messages=[{"role": "user", "content": "count"}], stream=True
    )
    deltas = [chunk.choices[0].delta.content async for chunk in stream]
    assert deltas[1:] == list(STREAM_WORDS)
    assert deltas[0] is not None
    assert deltas[0].endswith("prompt=count")


async def test_embeddings_are_forwarded(client: openai.AsyncOpenAI, stand_ins: list[StandIn]) -> None:
    """Embeddings of several inputs come back one per input, as the replica computed them."""
    answer = await client.embeddings.create(model="llm", input=["ab", "abcd"])
    assert [item.embedding for item in answer.data] == [[2.0, 0.0], [4.0, 1.0]]
    assert [body["model"] for body in _received(stand_ins)] == [SERVER_MODEL]


async def test_routes_without_the_openai_prefix(gateway: App, stand_ins: list[StandIn]) -> None:
    """/v1/... serves the same routes as /openai/v1/... (and /v1/models/{m} stays KServe V1)."""
    async with openai.AsyncOpenAI(base_url=f"{gateway.http_url}/v1", api_key="unused", max_retries=0) as oai:
        answer = await oai.completions.create(model="llm", prompt="hi")
        assert answer.choices[0].text.endswith("prompt=hi")
        assert [m.id for m in (await oai.models.list()).data] == ["llm", "llm_french"]
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.http_url}/v1/models/llm") as resp:
        assert await resp.json() == {"name": "llm", "ready": True}


async def test_models_list_names_models_and_adapters(client: openai.AsyncOpenAI) -> None:
    """GET /models lists every routable model and each served adapter as <model>_<adapter>."""
    models = (await client.models.list()).data
    assert [(m.id, m.object, m.owned_by) for m in models] == [
        ("llm", "model", "modelplane"),
        ("llm_french", "model", "modelplane"),
    ]


# ---- adapters and balancing ---------------------------------------------------------------------
async def test_adapter_is_selected_by_model_suffix(
    client: openai.AsyncOpenAI, stand_ins: list[StandIn]
) -> None:
    """<model>_<adapter> goes only to replicas serving the adapter, with model = the adapter name."""
    for _ in range(4):
        answer = await client.completions.create(model="llm_french", prompt="bonjour")
        assert answer.choices[0].text == "vllm0 model=french prompt=bonjour"
    assert [body["model"] for body in stand_ins[0].received] == ["french"] * 4
    assert stand_ins[1].received == []


async def test_a_model_named_like_an_adapter_wins(
    client: openai.AsyncOpenAI, gateway: App, js: JetStreamContext, stand_ins: list[StandIn]
) -> None:
    """When <model>_<adapter> is itself a known model, the request goes to that model."""
    await _route(
        js,
        gateway,
        Route(model="llm_french", versions=(RouteVersion(3, "other_3", (stand_ins[1].endpoint(0),)),)),
    )
    answer = await client.completions.create(model="llm_french", prompt="p")
    assert answer.choices[0].text == "vllm1 model=other_3 prompt=p"


async def test_prefix_hash_keeps_a_conversation_on_one_replica(
    client: openai.AsyncOpenAI, gateway: App, js: JetStreamContext, stand_ins: list[StandIn]
) -> None:
    """With PrefixHash, chats sharing the first user message meet the same replica."""
    endpoints = (stand_ins[0].endpoint(0), stand_ins[1].endpoint(1))
    await _route(
        js,
        gateway,
        Route(
            model="chat",
            versions=(RouteVersion(1, "chat_1", endpoints),),
            load_balancing=LoadBalancing(strategy="PrefixHash"),
        ),
    )
    for turn in range(6):
        await client.chat.completions.create(
            model="chat",
            messages=[
                {"role": "system", "content": f"turn {turn}"},
                {"role": "user", "content": "the same opening question"},
                {"role": "assistant", "content": "an answer"},
                {"role": "user", "content": f"follow-up {turn}"},
            ],
        )
    assert sorted(len(server.received) for server in stand_ins) == [0, 6]


async def test_request_is_held_until_a_replica_is_ready(
    client: openai.AsyncOpenAI, gateway: App, js: JetStreamContext, stand_ins: list[StandIn]
) -> None:
    """A request for a known model without a replica waits and succeeds once one is routed."""
    await _route(js, gateway, Route(model="cold", versions=(RouteVersion(1, "cold_1", ()),)))
    held = asyncio.ensure_future(client.completions.create(model="cold", prompt="wake"))
    try:

        async def waiting() -> bool:
            return not held.done() and _held(gateway, "cold")

        await eventually(waiting, STEP_TIMEOUT, "the request to be held")
        await put_route(
            js, Route(model="cold", versions=(RouteVersion(1, "cold_1", (stand_ins[0].endpoint(0),)),))
        )
        answer = await asyncio.wait_for(held, STEP_TIMEOUT)
    finally:
        held.cancel()
    assert answer.choices[0].text == "vllm0 model=cold_1 prompt=wake"


def _held(gateway: App, model: str) -> bool:
    return (
        b'modelplane_gateway_held_requests{model="' + model.encode() + b'"} 1.0' in gateway.metrics.render()
    )


# ---- errors -------------------------------------------------------------------------------------
async def test_unknown_model_is_404_model_not_found(client: openai.AsyncOpenAI) -> None:
    """An unknown model (or adapter) raises NotFoundError with OpenAI's error fields."""
    for name, message in (
        ("ghost", "model ghost not found"),
        ("llm_german", "model llm has no adapter german"),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model=name, messages=[{"role": "user", "content": "x"}])
        assert caught.value.status_code == 404
        assert caught.value.body == {
            "message": message,
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }


async def test_no_ready_replica_is_503_with_retry_after(
    client: openai.AsyncOpenAI, gateway: App, js: JetStreamContext
) -> None:
    """A known model without a replica after the hold is 503 with Retry-After, OpenAI-shaped."""
    await _route(js, gateway, Route(model="empty", versions=(RouteVersion(1, "empty_1", ()),)))
    with pytest.raises(openai.InternalServerError) as caught:
        await client.embeddings.create(model="empty", input="x")
    assert caught.value.status_code == 503
    assert caught.value.response.headers["Retry-After"] == "1"
    assert caught.value.code == "model_not_ready"
    assert "empty" in caught.value.message


async def test_replica_errors_pass_through(client: openai.AsyncOpenAI) -> None:
    """A replica's own error answer reaches the client with its status and body unchanged."""
    with pytest.raises(openai.BadRequestError) as caught:
        await client.completions.create(model="llm", prompt="")
    assert caught.value.status_code == 400
    assert caught.value.body == {
        "message": "prompt must not be empty",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }


async def test_bad_bodies_are_400_naming_the_field(gateway: App) -> None:
    """Invalid JSON, a non-object and a missing model are 400 in OpenAI's error shape."""
    url = f"{gateway.http_url}/openai/v1/chat/completions"
    cases = [
        (b"{nope", "request body"),
        (b"[1]", "request body"),
        (b'{"messages": []}', "model"),
        (b'{"model": ""}', "model"),
    ]
    async with aiohttp.ClientSession() as http:
        for body, param in cases:
            async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 400
                error = (await resp.json())["error"]
                assert (error["type"], error["param"]) == ("invalid_request_error", param)
                assert error["message"].startswith(f"{param}: ")


async def test_experiments_and_mirrors_apply_to_openai_requests(
    gateway: App, js: JetStreamContext, stand_ins: list[StandIn]
) -> None:
    """A request naming an experiment's default model goes to its candidate (x-seldon-route
    says which) and a copy goes to its mirror, as for V2 requests."""
    await _route(
        js, gateway, Route(model="base", versions=(RouteVersion(1, "base_1", (stand_ins[0].endpoint(0),)),))
    )
    await _route(
        js, gateway, Route(model="cand", versions=(RouteVersion(1, "cand_1", (stand_ins[1].endpoint(0),)),))
    )
    await _route(
        js,
        gateway,
        Route(model="shadow", versions=(RouteVersion(1, "shadow_1", (stand_ins[0].endpoint(1),)),)),
    )
    experiment = Experiment(
        meta=Meta(name="ab"),
        spec=ExperimentSpec(
            candidates=(ExperimentCandidate("cand", 100),),
            default="base",
            mirror=ExperimentMirror("shadow", 100),
        ),
    )
    bucket = await TypedBucket.open(js, subjects.KV_EXPERIMENTS, resources_pb2.Experiment)
    await bucket.put("ab", experiment_to_pb(experiment))

    async def known() -> bool:
        return gateway.experiments.with_default("base") is not None

    await eventually(known, STEP_TIMEOUT, "the experiment")
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.http_url}/v1/completions", json={"model": "base", "prompt": "p"}) as resp,
    ):
        answer = await resp.json()
        assert resp.status == 200, answer
        assert resp.headers["x-seldon-route"] == ":cand_1:"
    assert answer["choices"][0]["text"] == "vllm1 model=cand_1 prompt=p"

    async def mirrored() -> bool:
        return any(body["model"] == "shadow_1" for body in stand_ins[0].received)

    await eventually(mirrored, STEP_TIMEOUT, "the mirror copy")
    assert not any(body["model"] == "base_1" for body in _received(stand_ins))
