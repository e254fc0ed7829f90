"""Workers calling steps through a gateway that requires auth send their own inference token."""

from __future__ import annotations

import aiohttp
from nats.js import JetStreamContext

from modelplane.libs.auth.tokens import TokenStore
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.routes import Route, RouteVersion
from tests.dataflow.conftest import Flow, ModelsReplica, outputs_by_name, start_worker, tensor
from tests.dataflow.test_pipelines import seldon_pipeline
from tests.gateway.conftest import eventually, put_route, start_gateway
from tests.helpers.pipeline_models import MODEL_NAMES


async def test_steps_through_an_authenticating_gateway_carry_the_workers_token(
    js: JetStreamContext, nats_server: EmbeddedNats, models_replica: ModelsReplica
) -> None:
    """With MODELPLANE_DATAFLOW_GATEWAY_TOKEN the steps are answered; a worker without a token
    gets the gateway's 401 for its step, and the pipeline answers with that error."""
    for name in MODEL_NAMES:
        await put_route(
            js, Route(model=name, versions=(RouteVersion(1, name, (models_replica.endpoint(),)),))
        )
    store = await TokenStore.open(js)
    client_token = await store.create("client", "inference")
    worker_token = await store.create("dataflow", "inference")
    gateway = await start_gateway(nats_server, hold_seconds=0.5, pipeline_timeout_seconds=30, auth="required")
    headers = {"Authorization": f"Bearer {client_token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        flow = Flow(js, gateway, [], http)
        try:

            async def routed() -> bool:
                return all(gateway.routes.get(name) is not None for name in MODEL_NAMES)

            await eventually(routed, 10, "routes of the test models")
            flow.workers.append(await start_worker(nats_server, gateway, step_calls="gateway"))
            await flow.put(seldon_pipeline("viagw", [{"name": "double"}]))
            status, answer = await flow.infer("viagw", [tensor("INPUT0", [2.5])])
            assert status == 401, answer
            await flow.workers.pop().close()

            flow.workers.append(
                await start_worker(nats_server, gateway, step_calls="gateway", gateway_token=worker_token)
            )
            status, answer = await flow.infer("viagw", [tensor("INPUT0", [2.5])])
            assert status == 200, answer
            assert outputs_by_name(answer) == {"OUTPUT0": [5.0]}
        finally:
            for worker in flow.workers:
                await worker.close()
            await gateway.close()
