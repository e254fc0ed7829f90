"""Property test: generated bodies on every REST write route (apply as JSON and YAML text,
scale, tokens) never make the api fail (no 5xx, no traceback); test_api_rest_properties.py
drives the manifests from their schemas. Hypothesis drives a real server from a worker thread while
the api serves on the test's event loop."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelplane.services.api.app import App

KINDS = ["Model", "Server", "ServerConfig", "Experiment", "Pipeline", "InferenceGraph", "x", ""]
API_VERSIONS = ["modelplane.io/v1alpha1", "mlops.seldon.io/v1alpha1", "serving.kserve.io/v1alpha1", "v1"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
# Manifest-shaped documents reach the validators rather than stopping at "not a manifest".
manifests = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(API_VERSIONS),
        "kind": st.sampled_from(KINDS),
        "metadata": st.one_of(st.fixed_dictionaries({"name": st.text(max_size=12)}), json_values),
        "spec": st.one_of(
            st.dictionaries(
                st.sampled_from(
                    [
                        "storageUri",
                        "replicas",
                        "requirements",
                        "steps",
                        "candidates",
                        "default",
                        "memory",
                        "serverConfig",
                        "minReplicas",
                        "maxReplicas",
                        "autoscaling",
                        "nodes",
                        "runtime",
                    ]
                ),
                json_values,
                max_size=5,
            ),
            json_values,
        ),
    }
)
bodies = st.one_of(
    manifests.map(json.dumps),
    st.lists(manifests, max_size=3).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
)
routes = st.sampled_from(
    [
        ("POST", "/v1/apply", "application/json"),
        ("POST", "/v1/apply", "application/yaml"),
        ("POST", "/v1/models/iris/scale", "application/json"),
        ("POST", "/v1/servers/mlserver/scale", "application/json"),
        ("POST", "/v1/tokens", "application/json"),
    ]
)


def call(base: str, token: str, method: str, path: str, content_type: str, body: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        base + path,
        data=body.encode(),
        method=method,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_generated_bodies_never_fail_the_api(api_app: App, admin_token: str) -> None:
    """Every generated body is answered 2xx or 4xx with a JSON error; never 5xx or a traceback."""

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(route=routes, body=bodies)
    def property_holds(route: tuple[str, str, str], body: str) -> None:
        method, path, content_type = route
        status, answer = call(api_app.http_url, admin_token, method, path, content_type, body)
        assert status < 500, (status, answer, body)
        if status >= 400:
            assert isinstance(answer.get("error"), str), answer
            assert "Traceback" not in answer["error"]

    await asyncio.to_thread(property_holds)
