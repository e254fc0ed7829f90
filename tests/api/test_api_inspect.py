"""`pipeline inspect` through the api: records read back from the real dataflow stream.

The records are published here on the subjects the dataflow workers use (the workers themselves
are exercised in tests/dataflow); the api must find the latest request and each step's messages.
"""

from __future__ import annotations

import aiohttp
import grpc
import orjson
import pytest
from nats.js import JetStreamContext

from modelplane.libs import dataflow_stream, subjects
from modelplane.libs.auth.grpc_metadata import bearer_interceptors
from modelplane.libs.errors import InvalidError, NotFoundError
from modelplane.proto import control_pb2, control_pb2_grpc
from modelplane.services.api.app import App
from tests.api.test_api_pipelines import pipeline
from tests.helpers.auth import ADMIN, bearer


async def _record(js: JetStreamContext, subject: str, body: bytes) -> None:
    await js.publish(subject, body)


async def _two_requests(js: JetStreamContext) -> None:
    await dataflow_stream.ensure_stream(js)
    for rid, value in (("r1", 1), ("r2", 2)):
        await _record(js, subjects.pipeline_inputs("chain", rid), b'{"inputs":[%d]}' % value)
        steps = [
            {"step": "a", "port": "inputs", "message": {"a_in": value}},
            {"step": "a", "port": "outputs", "message": {"a_out": value}},
            {"step": "b", "port": "outputs", "message": {"b_out": value}},
        ]
        await _record(js, subjects.pipeline_steps("chain", rid), orjson.dumps(steps))
        await _record(js, subjects.pipeline_outputs("chain", rid), b'{"outputs":[%d]}' % value)


async def test_inspect_shows_the_latest_request(api_app: App, js: JetStreamContext) -> None:
    """Without a request id, the latest request's messages come back, pipeline first."""
    await api_app.handler.apply_manifest(ADMIN, pipeline("chain"))
    await _two_requests(js)
    found = await api_app.handler.inspect_pipeline(ADMIN, "chain")
    assert found.request_id == "r2"
    assert [(r.step, r.port, r.json) for r in found.records] == [
        ("", "inputs", '{"inputs":[2]}'),
        ("", "outputs", '{"outputs":[2]}'),
        ("a", "inputs", '{"a_in":2}'),
        ("a", "outputs", '{"a_out":2}'),
        ("b", "outputs", '{"b_out":2}'),
    ]
    assert all(r.time for r in found.records)


async def test_inspect_one_step_of_one_request(api_app: App, admin_token: str, js: JetStreamContext) -> None:
    """A step and a request id narrow it down (over gRPC and REST alike)."""
    await api_app.handler.apply_manifest(ADMIN, pipeline("chain"))
    await _two_requests(js)
    async with grpc.aio.insecure_channel(
        api_app.grpc_address, interceptors=bearer_interceptors(admin_token)
    ) as channel:
        reply = await control_pb2_grpc.ControlServiceStub(channel).InspectPipeline(
            control_pb2.InspectPipelineRequest(name="chain", step="a", request_id="r1"), timeout=10
        )
    assert reply.request_id == "r1"
    assert [(r.step, r.port, r.json) for r in reply.records] == [
        ("a", "inputs", '{"a_in":1}'),
        ("a", "outputs", '{"a_out":1}'),
    ]
    url = f"{api_app.http_url}/v1/pipelines/chain/inspect"
    async with (
        aiohttp.ClientSession(headers=bearer(admin_token)) as http,
        http.get(url, params={"step": "b"}) as resp,
    ):
        assert resp.status == 200
        body = await resp.json()
    assert body["request_id"] == "r2"
    assert [(r["step"], r["port"]) for r in body["records"]] == [("b", "outputs")]


async def test_inspect_errors_name_what_is_wrong(api_app: App, js: JetStreamContext) -> None:
    """Unknown pipeline/step/request: clear errors, not tracebacks."""
    await api_app.handler.apply_manifest(ADMIN, pipeline("chain"))
    await dataflow_stream.ensure_stream(js)
    with pytest.raises(NotFoundError, match="no request"):
        await api_app.handler.inspect_pipeline(ADMIN, "chain")
    with pytest.raises(NotFoundError):
        await api_app.handler.inspect_pipeline(ADMIN, "nope")
    with pytest.raises(InvalidError, match="no step 'zzz'") as step_error:
        await api_app.handler.inspect_pipeline(ADMIN, "chain", step="zzz")
    assert step_error.value.field == "step"
    with pytest.raises(InvalidError) as id_error:
        await api_app.handler.inspect_pipeline(ADMIN, "chain", request_id="a.b")
    assert id_error.value.field == "request_id"
    with pytest.raises(NotFoundError, match="no record of request r9"):
        await api_app.handler.inspect_pipeline(ADMIN, "chain", request_id="r9")
