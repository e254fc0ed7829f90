"""One MLServer process serving a trained iris model, for tests and benchmarks.

``iris_repository`` writes a model repository (the iris model under the given server-side name
and MLServer's ``settings.json`` on free ports, loading the model at start); ``spawn_mlserver``
starts MLServer on it in its own session, so ``stop_process_group`` stops it with everything it
spawned. Readiness is the caller's to poll (tests and the benchmark poll differently).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from modelplane.libs.embedded_nats import free_port
from tests.helpers.iris import IrisModel, build_iris_model


@dataclass(frozen=True)
class IrisRepository:
    models: Path
    iris: IrisModel
    http: str
    grpc: str


def write_settings(models: Path) -> tuple[str, str]:
    """MLServer's ``settings.json`` in ``models``: free ports, every model loaded at start,
    inference in the main process. Returns the (REST, gRPC) ``host:port`` addresses."""
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    settings = {
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "load_models_at_startup": True,
        "parallel_workers": 0,
        "debug": False,
    }
    (models / "settings.json").write_text(json.dumps(settings))
    return f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}"


def iris_repository(models: Path, server_model_name: str) -> IrisRepository:
    """A repository in ``models`` serving iris as ``server_model_name`` once MLServer starts."""
    iris = build_iris_model(models / server_model_name, name=server_model_name)
    http, grpc = write_settings(models)
    return IrisRepository(models, iris, http, grpc)


def spawn_mlserver(models: Path, log: Path) -> subprocess.Popen[bytes]:
    """MLServer on ``models`` in its own session, its output in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "mlserver"), "start", str(models)],
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
