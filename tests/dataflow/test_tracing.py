"""A pipeline request's W3C trace context reaches every step's model call: caller -> gateway ->
dataflow stream -> worker -> gateway -> replica, one trace throughout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from modelplane.libs.routes import Route, RouteEndpoint, RouteVersion
from tests.dataflow.conftest import Flow, outputs_by_name, tensor
from tests.dataflow.test_pipelines import seldon_pipeline
from tests.gateway.conftest import eventually, put_route

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
async def recording_replica() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A V2 REST replica stand-in (any model echoes its inputs as outputs) that remembers the
    headers of each infer call; MLServer does not expose them."""
    seen: list[dict[str, str]] = []

    async def infer(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        body: dict[str, Any] = await request.json()
        return web.json_response({"model_name": request.match_info["model"], "outputs": body["inputs"]})

    app = web.Application()
    app.router.add_post("/v2/models/{model}/infer", infer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def test_trace_context_reaches_every_step(
    flow: Flow, recording_replica: tuple[str, list[dict[str, str]]]
) -> None:
    """Both steps' calls at the replica carry the caller's trace id, each as a new span."""
    address, seen = recording_replica
    endpoint = RouteEndpoint(server="recorder", index=0, http_endpoint=address, grpc_endpoint=address)
    for name in ("echo-a", "echo-b"):
        await put_route(flow.js, Route(model=name, versions=(RouteVersion(1, name, (endpoint,)),)))

    async def routed() -> bool:
        return all(flow.gateway.routes.get(n) is not None for n in ("echo-a", "echo-b"))

    await eventually(routed, 10, "routes of the recorder")
    await flow.put(seldon_pipeline("traced", [{"name": "echo-a"}, {"name": "echo-b", "inputs": ["echo-a"]}]))
    body = {"inputs": [tensor("INPUT0", [7.0])]}
    async with flow.http.post(
        f"{flow.url}/v2/models/traced.pipeline/infer", json=body, headers={"traceparent": TRACEPARENT}
    ) as resp:
        assert resp.status == 200
        assert outputs_by_name(await resp.json()) == {"INPUT0": [7.0]}
    assert len(seen) == 2
    parents = []
    for headers in seen:
        version, trace_id, parent, _flags = headers["traceparent"].split("-")
        assert (version, trace_id) == ("00", TRACE_ID)
        parents.append(parent)
    assert len(set(parents)) == 2
    assert TRACEPARENT.split("-")[2] not in parents
