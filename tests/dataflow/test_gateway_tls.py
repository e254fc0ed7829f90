"""Workers calling a gateway served over TLS (`up --tls-cert`): an https:// gateway_url and the
gateway's CA (MODELPLANE_DATAFLOW_GATEWAY_CA) carry pipeline and graph steps; a worker that does
not trust the certificate gets no answer from its steps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nats.js import JetStreamContext
from pydantic import ValidationError

from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.routes import Route, RouteVersion
from modelplane.libs.tls import client_ssl_context
from modelplane.services.dataflow.settings import DataflowSettings
from tests.dataflow.conftest import Flow, ModelsReplica, outputs_by_name, start_worker, tensor
from tests.dataflow.test_inference_graphs import graph
from tests.dataflow.test_pipelines import seldon_pipeline
from tests.gateway.conftest import eventually, put_route, start_gateway
from tests.helpers.pipeline_models import MODEL_NAMES
from tests.helpers.tls_certs import CertFiles, make_cert


@pytest.fixture
def cert(tmp_path: Path) -> CertFiles:
    return make_cert(tmp_path / "tls")


@pytest.fixture
async def tls_flow(
    js: JetStreamContext, nats_server: EmbeddedNats, models_replica: ModelsReplica, cert: CertFiles
) -> AsyncIterator[Flow]:
    """A gateway serving TLS only, routing every test model; no worker yet; the test's own
    client trusts the certificate."""
    for name in MODEL_NAMES:
        await put_route(
            js, Route(model=name, versions=(RouteVersion(1, name, (models_replica.endpoint(),)),))
        )
    gateway = await start_gateway(
        nats_server, hold_seconds=0.5, pipeline_timeout_seconds=30, tls_cert=cert.cert, tls_key=cert.key
    )
    connector = aiohttp.TCPConnector(ssl=client_ssl_context(cert.ca))
    async with aiohttp.ClientSession(connector=connector) as http:
        flow = Flow(js, gateway, [], http)
        try:

            async def routed() -> bool:
                return all(gateway.routes.get(name) is not None for name in MODEL_NAMES)

            await eventually(routed, 10, "routes of the test models")
            yield flow
        finally:
            for worker in flow.workers:
                await worker.close()
            await gateway.close()


async def call_graph(flow: Flow, name: str, body: Any) -> tuple[int, Any]:
    async with flow.http.post(f"{flow.url}/graphs/{name}", json=body) as resp:
        return resp.status, await resp.json()


async def test_steps_reach_a_tls_gateway_with_its_ca(
    tls_flow: Flow, nats_server: EmbeddedNats, cert: CertFiles
) -> None:
    """With the CA, pipeline steps (step_calls = gateway) and graph steps are answered over
    https; without it, the certificate is refused and the steps fail with 502."""
    flow = tls_flow
    assert flow.url.startswith("https://")
    flow.workers.append(
        await start_worker(nats_server, flow.gateway, step_calls="gateway", gateway_ca=cert.ca)
    )
    await flow.put(seldon_pipeline("overtls", [{"name": "double"}]))
    status, answer = await flow.infer("overtls", [tensor("INPUT0", [2.5])])
    assert status == 200, answer
    assert outputs_by_name(answer) == {"OUTPUT0": [5.0]}

    sequence = {
        "root": {
            "routerType": "Sequence",
            "steps": [
                {"serviceName": "double", "name": "first"},
                {"serviceName": "negate", "name": "second", "data": "$response"},
            ],
        }
    }
    await flow.put(graph("tlsgraph", sequence))
    status, answer = await call_graph(flow, "tlsgraph", {"inputs": [tensor("INPUT0", [1.0, 2.0])]})
    assert status == 200, answer
    assert outputs_by_name(answer) == {"OUTPUT0": [-2.0, -4.0]}
    await flow.workers.pop().close()

    # The system's trust store does not know the test's self-signed certificate.
    flow.workers.append(await start_worker(nats_server, flow.gateway, step_calls="gateway"))
    status, answer = await flow.infer("overtls", [tensor("INPUT0", [2.5])])
    assert status == 502, answer
    assert "certificate" in str(answer).lower(), answer


def test_a_ca_for_a_plaintext_gateway_is_refused(cert: CertFiles) -> None:
    """gateway_ca with an http:// gateway_url is a settings error naming both."""
    with pytest.raises(ValidationError, match="gateway_ca is set but gateway_url"):
        DataflowSettings(gateway_url="http://127.0.0.1:9000", gateway_ca=cert.ca)
