"""Property tests: generated bodies against the api's REST endpoints never make it fail.

Bodies come from the manifests' own JSON schemas (the pydantic spec models the api validates
with, walked by ``_from_schema`` below: hypothesis-jsonschema does not run on current
hypothesis), from arbitrary JSON, and from arbitrary bytes. Whatever the
body, the api answers with a status below 500 and, for an error, a JSON ``{"error": ...}`` naming
the problem: never a traceback, never a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from modelplane.libs.resources import flow_manifests, manifests
from modelplane.services.api.app import App
from tests.helpers.auth import bearer

# One schema-driven strategy per (apiVersion, kind): the spec the api validates that kind with.
_SPECS: dict[tuple[str, str], type[BaseModel]] = {
    ("modelplane.io/v1alpha1", "Model"): manifests.NativeModelSpec,
    ("mlops.seldon.io/v1alpha1", "Model"): manifests.SeldonModelSpec,
    ("modelplane.io/v1alpha1", "Server"): manifests.NativeServerSpec,
    ("mlops.seldon.io/v1alpha1", "Server"): manifests.SeldonServerSpec,
    ("modelplane.io/v1alpha1", "ServerConfig"): manifests.NativeServerConfigSpec,
    ("modelplane.io/v1alpha1", "Experiment"): manifests.NativeExperimentSpec,
    ("modelplane.io/v1alpha1", "Pipeline"): flow_manifests.NativePipelineSpec,
    ("serving.kserve.io/v1alpha1", "InferenceGraph"): flow_manifests.KServeInferenceGraphSpec,
}

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
_NAMES = st.one_of(
    st.sampled_from(["iris", "a", "m-1", "x" * 63]),
    st.text(max_size=70),
)


def _from_schema(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values shaped like ``schema`` (mostly valid, sometimes not: the api must refuse those)."""
    if "$ref" in schema:
        return _from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, depth)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    options = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
    if options:
        return st.one_of([_from_schema(o, defs, depth) for o in options])
    kind = schema.get("type")
    if depth > 6:
        return st.none()
    if kind == "object":
        props = schema.get("properties", {})
        fields = {k: _from_schema(v, defs, depth + 1) for k, v in props.items()}
        extra = schema.get("additionalProperties")
        base = st.fixed_dictionaries({}, optional=fields)
        if isinstance(extra, dict):
            more = st.dictionaries(st.text(max_size=12), _from_schema(extra, defs, depth + 1), max_size=3)
            return st.builds(lambda a, b: {**b, **a}, base, more)
        return base
    if kind == "array":
        items = _from_schema(schema.get("items", {}), defs, depth + 1)
        return st.lists(items, max_size=4)
    if kind == "string":
        return st.sampled_from(["", "iris", "s3://b/k", "/etc", "1Gi", "-1", "a.b"]) | st.text(max_size=30)
    if kind == "integer":
        return st.integers(min_value=-(2**40), max_value=2**40)
    if kind == "number":
        return st.floats(allow_nan=True, allow_infinity=True)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return _JSON


def _spec_strategy(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    schema = model.model_json_schema()
    return _from_schema(schema, schema.get("$defs", {}))


@st.composite
def _manifests(draw: st.DrawFn) -> dict[str, Any]:
    api, kind = draw(st.sampled_from(sorted(_SPECS)))
    spec = draw(_spec_strategy(_SPECS[(api, kind)]) | _JSON)
    return {"apiVersion": api, "kind": kind, "metadata": {"name": draw(_NAMES)}, "spec": spec}


@pytest.fixture
async def http(api_app: App, admin_token: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An admin's session: the bodies must reach the validators, not stop at authentication."""
    async with aiohttp.ClientSession(base_url=api_app.http_url, headers=bearer(admin_token)) as session:
        yield session


async def _check(resp: aiohttp.ClientResponse) -> None:
    text = await resp.text()
    assert resp.status < 500, f"{resp.status}: {text}"
    assert "Traceback" not in text
    if resp.status >= 400:
        body = json.loads(text)
        assert isinstance(body.get("error"), str), body
        assert body["error"], body


_PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@_PROPERTY
@given(doc=_manifests())
async def test_schema_generated_manifests_never_fail_the_api(
    http: aiohttp.ClientSession, doc: dict[str, Any]
) -> None:
    """Manifests generated from each kind's schema are stored or refused with a 4xx naming why."""
    async with http.post("/v1/apply", json=doc) as resp:
        await _check(resp)


@_PROPERTY
@given(body=_JSON, content_type=st.sampled_from(["application/json", "application/yaml"]))
async def test_arbitrary_json_never_fails_the_api(
    http: aiohttp.ClientSession, body: Any, content_type: str
) -> None:
    """Any JSON value (as JSON or YAML) posted to /v1/apply is answered below 500."""
    data = json.dumps(body)
    async with http.post("/v1/apply", data=data, headers={"Content-Type": content_type}) as resp:
        await _check(resp)


@_PROPERTY
@given(body=st.binary(max_size=512), content_type=st.sampled_from(["application/json", "application/yaml"]))
async def test_arbitrary_bytes_never_fail_the_api(
    http: aiohttp.ClientSession, body: bytes, content_type: str
) -> None:
    """Bytes that are neither JSON nor YAML are a 4xx with a reason."""
    async with http.post("/v1/apply", data=body, headers={"Content-Type": content_type}) as resp:
        await _check(resp)


@_PROPERTY
@given(
    kind=st.sampled_from(["models", "servers", "serverconfigs", "pipelines", "experiments", "x"]),
    name=st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="/?#%"),
        min_size=1,
        max_size=80,
    ),
    body=_JSON,
)
async def test_generated_paths_and_scale_bodies_never_fail_the_api(
    http: aiohttp.ClientSession, kind: str, name: str, body: Any
) -> None:
    """Reads, status, deletes and scale calls for generated names and bodies answer below 500."""
    for method, path, payload in (
        ("GET", f"/v1/{kind}/{name}", None),
        ("GET", f"/v1/{kind}/{name}/status", None),
        ("POST", f"/v1/{kind}/{name}/scale", body),
        ("DELETE", f"/v1/{kind}/{name}", None),
    ):
        async with http.request(method, path, json=payload) as resp:
            await _check(resp)
