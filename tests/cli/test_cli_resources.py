"""`modelplane apply/delete/model/server` against the api App on free ports (real NATS, real gRPC)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.embedded_nats import free_port
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2, state_pb2

from .harness import Cli

NATIVE_IRIS = """\
apiVersion: modelplane.io/v1alpha1
kind: Model
metadata:
  name: iris
spec:
  storageUri: /models/iris
  requirements: [sklearn]
"""

# A Seldon Core v2 sample, byte for byte as users have it.
SELDON_IRIS = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: iris
  namespace: seldon-mesh
spec:
  storageUri: "gs://seldon-models/scv2/samples/mlserver_1.3.5/iris-sklearn"
  requirements:
  - sklearn
  memory: 100Ki
"""

SERVER = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Server
metadata:
  name: mlserver
spec:
  serverConfig: mlserver
  replicas: 2
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


async def test_apply_reports_created_unchanged_configured(run_cli: Cli, tmp_path: Path) -> None:
    """apply prints one line per resource with what happened to it."""
    path = write(tmp_path, "iris.yaml", NATIVE_IRIS)
    first = await run_cli("apply", "-f", str(path))
    assert (first.exit_code, first.stdout) == (0, "model/iris created\n")
    again = await run_cli("apply", "-f", str(path))
    assert again.stdout == "model/iris unchanged\n"
    path.write_text(NATIVE_IRIS + "  replicas: 2\n")
    changed = await run_cli("apply", "-f", str(path))
    assert changed.stdout == "model/iris configured\n"


async def test_apply_directory_and_stdin_multi_document(run_cli: Cli, tmp_path: Path) -> None:
    """A directory applies its manifests in name order; - reads multi-document YAML from stdin."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    write(folder, "b-server.yaml", SERVER)
    write(
        folder,
        "a-model.json",
        json.dumps(
            {
                "apiVersion": "modelplane.io/v1alpha1",
                "kind": "Model",
                "metadata": {"name": "a"},
                "spec": {"storageUri": "/m"},
            }
        ),
    )
    write(folder, "notes.txt", "not a manifest")
    result = await run_cli("apply", "-f", str(folder))
    assert (result.exit_code, result.stdout) == (0, "model/a created\nserver/mlserver created\n")
    piped = await run_cli("apply", "-f", "-", input=NATIVE_IRIS + "---\n" + SERVER)
    assert piped.stdout == "model/iris created\nserver/mlserver unchanged\n"
    deleted = await run_cli("delete", "-f", str(folder))
    assert (deleted.exit_code, deleted.stdout) == (0, "model/a deleted\nserver/mlserver deleted\n")


BAD_INPUTS = [
    pytest.param("key: [unclosed\n", "invalid YAML at line 2", id="invalid-yaml"),
    pytest.param(
        NATIVE_IRIS.replace("kind: Model", "kind: Pod"),
        "kind: unknown kind 'Pod'",
        id="unknown-kind",
    ),
    pytest.param(
        NATIVE_IRIS.replace("modelplane.io/v1alpha1", "serving.kserve.io/v9"),
        "apiVersion: unknown apiVersion",
        id="unknown-api",
    ),
    pytest.param(
        NATIVE_IRIS.replace("  storageUri: /models/iris\n", ""),
        "spec.storageUri: is required",
        id="missing-storage-uri",
    ),
    pytest.param(
        NATIVE_IRIS.replace("name: iris", "name: Iris_1"),
        "metadata.name: 'Iris_1' is not a valid name",
        id="bad-name",
    ),
    pytest.param(
        NATIVE_IRIS + "  replicas: -1\n", "spec.replicas: must be >= 0, got -1", id="negative-replicas"
    ),
    pytest.param(NATIVE_IRIS + "  replica: 2\n", "spec.replica: unknown field", id="typo-field"),
]


@pytest.mark.parametrize(("text", "message"), BAD_INPUTS)
async def test_bad_manifest_exits_2_naming_the_field_and_keeps_stored_model(
    run_cli: Cli, tmp_path: Path, text: str, message: str
) -> None:
    """Bad input exits 2 with one stderr line naming file and field; the stored model is untouched."""
    good = write(tmp_path, "good.yaml", NATIVE_IRIS)
    assert (await run_cli("apply", "-f", str(good))).exit_code == 0
    bad = write(tmp_path, "bad.yaml", text)
    result = await run_cli("apply", "-f", str(bad))
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: {bad}")
    assert message in lines[0]
    assert result.stdout == ""
    listed = await run_cli("model", "status", "iris", "-o", "json")
    assert json.loads(listed.stdout)["generation"] == "1"
    stored = await run_cli("apply", "-f", str(good))
    assert stored.stdout == "model/iris unchanged\n"


async def test_missing_file_is_a_usage_error(run_cli: Cli, tmp_path: Path) -> None:
    """A -f path that does not exist exits 2 naming it."""
    result = await run_cli("apply", "-f", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path / 'nope.yaml'}: no such file or directory\n"


async def test_model_load_seldon_yaml_unchanged_then_status_list_unload(
    run_cli: Cli, tmp_path: Path, js: JetStreamContext
) -> None:
    """`model load` takes Seldon Model YAML unchanged, in its namespace (seldon-mesh); status,
    list and unload follow there with -n (MODELPLANE_NAMESPACE here)."""
    path = write(tmp_path, "iris.yaml", SELDON_IRIS)
    loaded = await run_cli("model", "load", "--no-wait", "-f", str(path))
    assert (loaded.exit_code, loaded.stdout) == (0, "model/iris created\n")
    mesh = {"MODELPLANE_NAMESPACE": "seldon-mesh"}
    elsewhere = await run_cli("model", "status", "iris")
    assert (elsewhere.exit_code, elsewhere.stderr) == (1, "Error: Model 'iris' not found\n")
    waiting = await run_cli("model", "status", "iris", **mesh)
    assert waiting.stdout.splitlines()[:3] == [
        "model/iris: ModelStateUnknown",
        "  available: 0/1",
        "  reason: waiting for status",
    ]
    statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    await statuses.put(
        subjects.status_key("Model", "seldon-mesh--iris"),
        state_pb2.ResourceStatus(
            kind="Model",
            name="seldon-mesh--iris",
            state="ModelAvailable",
            available_replicas=1,
            total_replicas=1,
            version=1,
            replicas=[state_pb2.ReplicaStatus(server="mlserver", index=0, state="Available")],
        ),
    )
    status = await run_cli("model", "status", "iris", "-n", "seldon-mesh")
    assert "mlserver.0  Available" in status.stdout
    listed = await run_cli("model", "list", **mesh)
    assert listed.stdout.splitlines() == [
        "NAME  STATE           AVAILABLE  VERSION  REASON",
        "iris  ModelAvailable  1/1        1        -",
    ]
    assert "iris" not in (await run_cli("model", "list")).stdout  # namespace default
    unloaded = await run_cli("model", "unload", "iris", **mesh)
    assert unloaded.stdout == "model/iris deleted\n"
    gone = await run_cli("model", "unload", "iris", **mesh)
    assert (gone.exit_code, gone.stderr) == (1, "Error: Model 'seldon-mesh--iris' not found\n")


async def test_model_load_refuses_other_kinds(run_cli: Cli, tmp_path: Path) -> None:
    """`model load` of a Server manifest exits 2 saying it takes Models."""
    result = await run_cli("model", "load", "-f", str(write(tmp_path, "s.yaml", SERVER)))
    assert result.exit_code == 2
    assert "`model load` takes Model manifests, got 'Server'" in result.stderr


async def test_status_wait_returns_once_available(run_cli: Cli, tmp_path: Path, js: JetStreamContext) -> None:
    """`model status -w Available` returns 0 once the status service reports ModelAvailable."""
    await run_cli("model", "load", "--no-wait", "-f", str(write(tmp_path, "iris.yaml", SELDON_IRIS)))
    statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    key = subjects.status_key("Model", "iris")
    await statuses.put(key, state_pb2.ResourceStatus(kind="Model", name="iris", state="ModelProgressing"))
    waiting = asyncio.ensure_future(run_cli("model", "status", "iris", "-w", "Available", "--timeout", "60"))
    await statuses.put(
        key,
        state_pb2.ResourceStatus(
            kind="Model", name="iris", state="ModelAvailable", available_replicas=1, total_replicas=1
        ),
    )
    result = await waiting
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("model/iris: ModelAvailable")


async def test_status_wait_times_out_with_current_state(
    run_cli: Cli, tmp_path: Path, js: JetStreamContext
) -> None:
    """On timeout `-w` exits 1 saying the state and reason it saw last."""
    await run_cli("model", "load", "--no-wait", "-f", str(write(tmp_path, "iris.yaml", SELDON_IRIS)))
    statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    await statuses.put(
        subjects.status_key("Model", "iris"),
        state_pb2.ResourceStatus(
            kind="Model", name="iris", state="ScheduleFailed", reason="no matching servers are available"
        ),
    )
    result = await run_cli("model", "status", "iris", "-w", "ModelAvailable", "--timeout", "0.5")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: timed out after 0.5s waiting for model iris to be ModelAvailable: "
        "it is ScheduleFailed (no matching servers are available)\n"
    )


async def test_server_list_and_status(run_cli: Cli, tmp_path: Path, js: JetStreamContext) -> None:
    """server list shows each server; server status shows each replica's endpoints and models."""
    await run_cli("apply", "-f", str(write(tmp_path, "server.yaml", SERVER)))
    replicas = await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
    await replicas.put(
        "mlserver.0",
        state_pb2.ReplicaInfo(
            server="mlserver",
            index=0,
            http_endpoint="127.0.0.1:8080",
            grpc_endpoint="127.0.0.1:8081",
            capabilities=["mlserver", "sklearn"],
            memory_bytes=1 << 30,
            loaded_models=["iris_1"],
            runtime="mlserver",
        ),
    )
    listed = await run_cli("server", "list")
    assert listed.stdout.splitlines() == [
        "NAME      STATE           READY  SERVERCONFIG  REASON",
        "mlserver  ServerNotReady  0/2    mlserver      waiting for status",
    ]
    status = await run_cli("server", "status", "mlserver")
    assert status.exit_code == 0
    for expected in (
        "server/mlserver: ServerNotReady",
        "replica 0: Ready",
        "http=127.0.0.1:8080",
        "mlserver, sklearn",
        "memory: 1Gi",
        "loaded models: iris_1",
    ):
        assert expected in status.stdout
    missing = await run_cli("server", "status", "nope")
    assert (missing.exit_code, missing.stderr) == (1, "Error: Server 'nope' not found\n")


async def test_unreachable_api_is_one_line_exit_1(run_cli: Cli) -> None:
    """With no api listening the CLI exits 1 with one line telling how to start it."""
    address = f"127.0.0.1:{free_port()}"
    result = await run_cli("model", "list", MODELPLANE_API_ADDRESS=address)
    assert result.exit_code == 1
    assert result.stderr == f"Error: cannot reach the modelplane api at {address} (is `make up` running?)\n"


async def test_relative_storage_uri_is_resolved_next_to_the_manifest(
    run_cli: Cli, tmp_path: Path, js: JetStreamContext
) -> None:
    """`storageUri: ./model` in a file means the folder beside that file, whatever the cwd."""
    folder = tmp_path / "project"
    folder.mkdir()
    manifest = write(folder, "model.yaml", NATIVE_IRIS.replace("/models/iris", "./model"))
    result = await run_cli("model", "load", "--no-wait", "-f", str(manifest))
    assert result.exit_code == 0, result.output
    models = await TypedBucket.open(js, subjects.KV_MODELS, resources_pb2.Model)
    stored = await models.get("iris")
    assert stored.value.spec.storage_uri == f"file://{folder / 'model'}"


async def test_server_status_shows_booked_memory_and_scale_request(
    run_cli: Cli, tmp_path: Path, js: JetStreamContext
) -> None:
    """server status shows per replica total/available/reserved memory, overcommit, models,
    draining, and the pending scale request; -o yaml carries the same fields."""
    await run_cli("apply", "-f", str(write(tmp_path, "server.yaml", SERVER)))
    replicas = await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
    await replicas.put(
        "mlserver.0",
        state_pb2.ReplicaInfo(
            server="mlserver", index=0, memory_bytes=1 << 30, runtime="mlserver", draining=True
        ),
    )
    statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    await statuses.put(
        subjects.status_key("Server", "mlserver"),
        state_pb2.ResourceStatus(
            kind="Server",
            name="mlserver",
            state="ServerReady",
            scale_request="scale up from 2 to 3 replicas: model iris has 2 of 3 replicas",
            replicas=[
                state_pb2.ReplicaStatus(
                    server="mlserver",
                    index=0,
                    state="Ready",
                    memory_bytes=1 << 30,
                    overcommit_percent=10,
                    reserved_bytes=100 << 20,
                    loaded_bytes=200 << 20,
                    available_bytes=(1 << 30) + (1 << 30) // 10 - (200 << 20),
                    models=["iris_1", "wine_2"],
                    draining=True,
                )
            ],
        ),
    )
    status = await run_cli("server", "status", "mlserver")
    assert status.exit_code == 0, status.output
    for expected in (
        "scale request: scale up from 2 to 3 replicas: model iris has 2 of 3 replicas",
        "replica 0: Draining",
        "memory: total 1Gi, available",
        "reserved 100Mi, loaded 200Mi (overcommit 10%)",
        "models: iris_1, wine_2",
        "draining: yes",
    ):
        assert expected in status.stdout
    as_yaml = yaml.safe_load((await run_cli("server", "status", "mlserver", "-o", "yaml")).stdout)
    assert as_yaml["status"]["scaleRequest"].startswith("scale up from 2 to 3")
    booked = as_yaml["status"]["replicas"][0]
    assert (booked["reservedBytes"], booked["models"], booked["draining"]) == (
        str(100 << 20),
        ["iris_1", "wine_2"],
        True,
    )


async def test_model_status_yaml_shows_each_replica_state_reason_and_time(
    run_cli: Cli, tmp_path: Path, js: JetStreamContext
) -> None:
    """model status -o yaml lists each replica with its state, reason and time of the change."""
    await run_cli("model", "load", "--no-wait", "-f", str(write(tmp_path, "iris.yaml", SELDON_IRIS)))
    statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
    await statuses.put(
        subjects.status_key("Model", "iris"),
        state_pb2.ResourceStatus(
            kind="Model",
            name="iris",
            state="ModelFailed",
            replicas=[
                state_pb2.ReplicaStatus(
                    server="mlserver",
                    index=1,
                    state="LoadFailed",
                    reason="bad",
                    updated_at="2026-01-01T00:00:00Z",
                )
            ],
        ),
    )
    result = await run_cli("model", "status", "iris", "-o", "yaml")
    assert result.exit_code == 0, result.output
    replica = yaml.safe_load(result.stdout)["replicas"][0]
    assert replica == {
        "server": "mlserver",
        "index": 1,
        "state": "LoadFailed",
        "reason": "bad",
        "updatedAt": "2026-01-01T00:00:00Z",
    }


async def test_scale_sets_replicas_and_refuses_bounds_with_exit_2(run_cli: Cli, tmp_path: Path) -> None:
    """`model scale` and `server scale` change only replicas; beyond maxReplicas is exit 2
    naming the field, and the stored model keeps its replicas."""
    await run_cli("apply", "-f", str(write(tmp_path, "iris.yaml", NATIVE_IRIS + "  maxReplicas: 3\n")))
    await run_cli("apply", "-f", str(write(tmp_path, "server.yaml", SERVER)))
    scaled = await run_cli("model", "scale", "iris", "--replicas", "3")
    assert (scaled.exit_code, scaled.stdout) == (0, "model/iris scaled to 3 replicas (configured)\n")
    server = await run_cli("server", "scale", "mlserver", "--replicas", "1")
    assert (server.exit_code, server.stdout) == (0, "server/mlserver scaled to 1 replicas (configured)\n")
    refused = await run_cli("model", "scale", "iris", "--replicas", "4")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("Error: model/iris: spec.replicas")
    kept = await run_cli("model", "scale", "iris", "--replicas", "3")
    assert kept.stdout == "model/iris scaled to 3 replicas (unchanged)\n"
