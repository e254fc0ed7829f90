"""A dataflow worker killed in the middle of requests loses none of them: JetStream hands them to
another worker, and each request's answer is stored exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError as JsNotFoundError

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import EmbeddedNats
from modelplane.libs.store import TypedBucket
from modelplane.proto import state_pb2
from tests.dataflow.conftest import Flow, outputs_by_name, start_worker, tensor
from tests.dataflow.test_pipelines import seldon_pipeline
from tests.gateway.conftest import eventually
from tests.helpers.processes import stop_process_group

REQUESTS = 4


def spawn_worker(nats_server: EmbeddedNats, gateway_url: str, log: Path) -> subprocess.Popen[bytes]:
    """`modelplane run dataflow` as its own process (so it can be killed with SIGKILL)."""
    env = {
        **os.environ,
        "MODELPLANE_NATS_URL": nats_server.url,
        "MODELPLANE_DATAFLOW_GATEWAY_URL": gateway_url,
        # Short, so the test does not wait long for JetStream to give the requests away.
        "MODELPLANE_DATAFLOW_ACK_WAIT_SECONDS": "2",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "modelplane", "run", "dataflow"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def test_killed_worker_loses_no_request(
    flow_without_workers: Flow, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    """Requests running on a worker killed with SIGKILL are answered by another worker, each
    exactly once."""
    flow = flow_without_workers
    proc = spawn_worker(nats_server, flow.url, tmp_path / "worker.log")
    try:
        states = await TypedBucket.open(flow.js, subjects.KV_DATAFLOW, state_pb2.DataflowState)
        await flow.put(seldon_pipeline("slowpipe", [{"name": "slow"}]))

        async def worker_runs_it() -> bool:
            found = await states.try_get(subjects.status_key("Pipeline", "slowpipe"))
            return found is not None and found.value.state == "Ready"

        await eventually(worker_runs_it, 30, "the worker process to take the pipeline on")
        calls = [
            asyncio.create_task(flow.infer("slowpipe", [tensor("INPUT0", [float(i)])]))
            for i in range(REQUESTS)
        ]

        async def all_taken() -> bool:
            # Delivered to the worker process and not acknowledged: it is running them (the
            # model takes a second each).
            try:
                info = await flow.js.consumer_info(
                    subjects.DATAFLOW_STREAM, subjects.DATAFLOW_WORKERS_CONSUMER
                )
            except JsNotFoundError:
                # The worker marks the pipeline Ready as soon as it knows it and joins the shared
                # consumer a moment later (the requests wait in the stream meanwhile).
                return False
            return bool(info.num_ack_pending == REQUESTS)

        await eventually(all_taken, 30, "the worker process to take every request")
        assert not any(call.done() for call in calls)
        # Every request is inside the model call now: kill the worker without a chance to clean up.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        flow.workers.append(await start_worker(nats_server, flow.gateway, ack_wait_seconds=2))

        answers = await asyncio.wait_for(asyncio.gather(*calls), 60)
        assert sorted(outputs_by_name(answer)["OUTPUT0"][0] for _, answer in answers) == [0.0, 1.0, 2.0, 3.0]
        assert all(status == 200 for status, _ in answers)

        # The stream holds exactly one answer per request.
        stored = await flow.js.subscribe(
            subjects.pipeline_outputs("slowpipe", "*"),
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        subjects_seen = []
        try:
            while True:
                msg = await stored.next_msg(timeout=1)
                subjects_seen.append(msg.subject)
        except NatsTimeoutError:
            pass  # nothing more stored
        finally:
            await stored.unsubscribe()
        assert len(subjects_seen) == REQUESTS
        assert len(set(subjects_seen)) == REQUESTS
    finally:
        stop_process_group(proc, timeout=10)
