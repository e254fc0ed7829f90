"""The agent end to end: real NATS, real storage service, a real MLServer the agent launches."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import aiohttp
import numpy as np
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.resources import defaults
from modelplane.libs.store import TypedBucket
from modelplane.proto import agent_pb2, resources_pb2, state_pb2
from modelplane.services.placement.app import App as PlacementApp
from tests.helpers.iris import build_iris_model
from tests.placement.conftest import Reports, eventually

LOAD_OUTCOMES = {agent_pb2.OUTCOME_LOADED, agent_pb2.OUTCOME_LOAD_FAILED}
UNLOAD_OUTCOMES = {agent_pb2.OUTCOME_UNLOADED, agent_pb2.OUTCOME_UNLOAD_FAILED}


async def _replica(js: JetStreamContext) -> state_pb2.ReplicaInfo | None:
    bucket = await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
    found = await bucket.try_get(subjects.replica_key("mlserver", 0))
    return found.value if found else None


async def _command(nc: NATS, kind: str, payload: bytes) -> agent_pb2.CommandReply:
    msg = await nc.request(subjects.agent_command("mlserver", 0, kind), payload, timeout=5)
    reply = agent_pb2.CommandReply()
    reply.ParseFromString(msg.data)
    return reply


def _load(
    model: str,
    version: int,
    uri: str,
    requirements: Iterable[str] = (),
    parameters: Mapping[str, str] | None = None,
) -> bytes:
    spec = resources_pb2.ModelSpec(storage_uri=uri, requirements=requirements, parameters=parameters)
    command = agent_pb2.LoadModelCommand(model=model, version=version, spec=spec)
    return command.SerializeToString()


def _unload(model: str, version: int) -> bytes:
    return agent_pb2.UnloadModelCommand(model=model, version=version).SerializeToString()


async def test_registers_replica(mlserver_agent: PlacementApp, js: JetStreamContext) -> None:
    """The replica appears in KV with endpoints, default capabilities, memory and an incarnation."""
    info = await _replica(js)
    assert info is not None
    assert info.incarnation == mlserver_agent.replica.incarnation
    assert len(info.incarnation) == 32
    assert info.runtime == "mlserver"
    assert info.http_endpoint.startswith("127.0.0.1:")
    assert info.grpc_endpoint.startswith("127.0.0.1:")
    assert tuple(info.capabilities) == defaults.MLSERVER_CAPABILITIES
    assert info.memory_bytes == defaults.DEFAULT_REPLICA_MEMORY
    assert info.unavailable_reason == ""
    assert list(info.loaded_models) == []
    assert info.registered_at.endswith("Z")
    async with aiohttp.ClientSession() as http, http.get(f"http://{info.http_endpoint}/v2/health/ready") as r:
        assert r.status == 200


async def test_load_infer_unload(
    mlserver_agent: PlacementApp, nc: NATS, js: JetStreamContext, reports: Reports, tmp_path: Path
) -> None:
    """A loaded iris model answers inference with the trained predictions; unload removes it."""
    iris = build_iris_model(tmp_path / "artifacts" / "iris")
    reply = await _command(nc, "load", _load("iris", 1, f"file://{iris.path}", requirements=["sklearn"]))
    assert reply.accepted, reply.reason
    loaded = await reports.wait_for("iris", LOAD_OUTCOMES)
    assert loaded.outcome == agent_pb2.OUTCOME_LOADED, loaded.message
    assert (loaded.server, loaded.index, loaded.version) == ("mlserver", 0, 1)
    assert loaded.incarnation == mlserver_agent.replica.incarnation
    assert reports.seen[0].outcome == agent_pb2.OUTCOME_LOADING

    info = await _replica(js)
    assert info is not None
    assert list(info.loaded_models) == ["iris_1"]
    settings = json.loads(
        (mlserver_agent.state_dir / "models" / "iris_1" / "model-settings.json").read_text()
    )
    assert settings["name"] == "iris_1"

    base = f"http://{info.http_endpoint}/v2/models/iris_1"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/infer", json=iris.v2_request(rows=5)) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
        assert np.array_equal(np.array(body["outputs"][0]["data"]), iris.expected[:5])

        assert (await _command(nc, "unload", _unload("iris", 1))).accepted
        unloaded = await reports.wait_for("iris", UNLOAD_OUTCOMES)
        assert unloaded.outcome == agent_pb2.OUTCOME_UNLOADED, unloaded.message
        async with http.get(f"{base}/ready") as resp:
            assert resp.status != 200
    assert not (mlserver_agent.state_dir / "models" / "iris_1").exists()
    info = await _replica(js)
    assert info is not None
    assert list(info.loaded_models) == []


async def test_model_settings_derived_from_requirements(
    mlserver_agent: PlacementApp, nc: NATS, reports: Reports, tmp_path: Path
) -> None:
    """A bare model file loads when a requirement names the runtime; spec parameters are merged."""
    iris = build_iris_model(tmp_path / "artifacts" / "bare")
    (iris.path / "model-settings.json").unlink()
    uri = str(iris.path / "model.joblib")
    reply = await _command(nc, "load", _load("bare", 3, uri, requirements=["sklearn"], parameters={"k": "v"}))
    assert reply.accepted
    loaded = await reports.wait_for("bare", LOAD_OUTCOMES)
    assert loaded.outcome == agent_pb2.OUTCOME_LOADED, loaded.message
    written = json.loads((mlserver_agent.state_dir / "models" / "bare_3" / "model-settings.json").read_text())
    assert written["implementation"] == "mlserver_sklearn.SKLearnModel"
    assert written["parameters"] == {"uri": "./model.joblib", "k": "v"}


async def test_broken_artifact_fails_with_mlserver_message(
    mlserver_agent: PlacementApp, nc: NATS, reports: Reports, tmp_path: Path
) -> None:
    """An artifact MLServer cannot load gives LOAD_FAILED carrying MLServer's own error."""
    iris = build_iris_model(tmp_path / "artifacts" / "broken")
    (iris.path / "model.joblib").write_bytes(b"this is not a joblib file")
    assert (await _command(nc, "load", _load("broken", 1, str(iris.path)))).accepted
    failed = await reports.wait_for("broken", LOAD_OUTCOMES)
    assert failed.outcome == agent_pb2.OUTCOME_LOAD_FAILED
    # joblib's own complaint about the garbage file, as MLServer reported it.
    assert "Error" in failed.message, failed.message
    assert not (mlserver_agent.state_dir / "models" / "broken_1").exists()


async def test_load_failures_before_the_server(
    mlserver_agent: PlacementApp, nc: NATS, reports: Reports, tmp_path: Path
) -> None:
    """Missing artifacts, unsupported schemes and unknown runtimes fail with a clear reason."""
    assert (await _command(nc, "load", _load("missing", 1, str(tmp_path / "nope")))).accepted
    missing = await reports.wait_for("missing", LOAD_OUTCOMES)
    assert missing.outcome == agent_pb2.OUTCOME_LOAD_FAILED
    assert str(tmp_path / "nope") in missing.message

    assert (await _command(nc, "load", _load("remote", 1, "ftp://bucket/iris"))).accepted
    remote = await reports.wait_for("remote", LOAD_OUTCOMES)
    assert "unsupported scheme 'ftp'" in remote.message

    bare = build_iris_model(tmp_path / "artifacts" / "noreq")
    (bare.path / "model-settings.json").unlink()
    assert (await _command(nc, "load", _load("noreq", 1, str(bare.path)))).accepted
    noreq = await reports.wait_for("noreq", LOAD_OUTCOMES)
    assert noreq.outcome == agent_pb2.OUTCOME_LOAD_FAILED
    assert "cannot tell which runtime implementation to use" in noreq.message


async def test_unload_of_unknown_model_counts_as_unloaded(
    mlserver_agent: PlacementApp, nc: NATS, reports: Reports
) -> None:
    """Unloading a model the server does not hold reports UNLOADED."""
    assert (await _command(nc, "unload", _unload("ghost", 7))).accepted
    report = await reports.wait_for("ghost", UNLOAD_OUTCOMES)
    assert report.outcome == agent_pb2.OUTCOME_UNLOADED


async def test_close_deregisters_and_stops_mlserver(
    mlserver_agent: PlacementApp, js: JetStreamContext
) -> None:
    """close() deletes the replica key and ends MLServer's whole process group; twice is fine."""
    runtime = mlserver_agent.runtime
    pid = getattr(runtime, "pid", None)
    assert pid is not None
    await mlserver_agent.close()
    await mlserver_agent.close()
    assert await _replica(js) is None

    async def group_gone() -> bool:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await eventually(group_gone, timeout=5)


async def test_host_files_never_reach_the_model_repository(
    mlserver_agent: PlacementApp, nc: NATS, reports: Reports, tmp_path: Path
) -> None:
    """/etc, and a model folder with a symlink to /etc/passwd, fail to load; nothing is copied."""
    assert (await _command(nc, "load", _load("etc", 1, "/etc"))).accepted
    etc = await reports.wait_for("etc", LOAD_OUTCOMES)
    assert etc.outcome == agent_pb2.OUTCOME_LOAD_FAILED
    assert "spec.storageUri" in etc.message
    iris = build_iris_model(tmp_path / "artifacts" / "linked")
    (iris.path / "passwd").symlink_to("/etc/passwd")
    assert (await _command(nc, "load", _load("linked", 1, str(iris.path), requirements=["sklearn"]))).accepted
    linked = await reports.wait_for("linked", LOAD_OUTCOMES)
    assert linked.outcome == agent_pb2.OUTCOME_LOAD_FAILED
    assert "symlink" in linked.message
    repo = mlserver_agent.state_dir / "models"
    assert not (repo / "etc_1").exists()
    assert not (repo / "linked_1").exists()
    assert not list(repo.rglob("passwd"))
