"""KServe's own Python REST client (``InferenceRESTClient``), run from a venv of its own.

kserve pins a fastapi that MLServer's pin excludes, so it cannot live in our environment. Its venv
is made once under a cache dir and reused (``python -m tests.helpers.kserve_client`` makes it:
``pip install kserve==0.21.0`` from PyPI, ~35 s and ~450 MB on a 2-core machine). Tests look it up
without network (``kserve_python``) and skip when it was not made; ``kserve_infer`` runs one call
(V1 ``/v1/models/<m>:predict`` or V2 ``/v2/models/<m>/infer``) in that venv and returns the answer
as JSON.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers.processes import run_python_json

KSERVE_VERSION = "0.21.0"
CACHE_ENV = "MODELPLANE_KSERVE_CLIENT_CACHE"
_READY = ".ready"  # written last: a venv without it was interrupted while being made

# Runs in the kserve venv: argv = base_url, model, protocol (v1 | v2), request body as JSON.
_INFER_SCRIPT = """
import asyncio, json, sys
from kserve import InferenceRESTClient, RESTConfig

base_url, model, protocol, body = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])

async def main():
    client = InferenceRESTClient(RESTConfig(protocol=protocol, retries=0, timeout=30))
    try:
        answer = await client.infer(base_url, body, model_name=model)
    finally:
        await client.close()
    if protocol == "v2":  # an InferResponse; without binary outputs its REST form is a dict
        answer, _ = answer.to_rest()
    print(json.dumps(answer))

asyncio.run(main())
"""


def default_cache_dir() -> Path:
    """``$MODELPLANE_KSERVE_CLIENT_CACHE``, else ~/.cache/modelplane."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "modelplane")


def _venv(cache_dir: Path) -> Path:
    return cache_dir / f"kserve-client-{KSERVE_VERSION}"


def kserve_python(cache_dir: Path) -> Path | None:
    """The kserve venv's interpreter when that venv was made completely, else None (no network)."""
    venv = _venv(cache_dir)
    return venv / "bin" / "python" if (venv / _READY).is_file() else None


def prepare_kserve_venv(cache_dir: Path, timeout: float = 900.0) -> Path:
    """Make the kserve venv under ``cache_dir`` unless it is there; return its interpreter.

    Needs PyPI. A file lock keeps two processes from making it at once."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".kserve-client.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = kserve_python(cache_dir)
        if found is not None:
            return found
        venv = _venv(cache_dir)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=timeout)
        python = venv / "bin" / "python"
        install = [str(python), "-m", "pip", "install", "--quiet", f"kserve=={KSERVE_VERSION}"]
        subprocess.run(install, check=True, timeout=timeout)
        (venv / _READY).touch()
        return python


async def kserve_infer(python: Path, base_url: str, model: str, body: dict[str, Any], protocol: str) -> Any:
    """KServe's ``InferenceRESTClient.infer`` against ``base_url`` (http://host:port) for ``model``:
    protocol "v1" posts ``body`` to /v1/models/<model>:predict, "v2" to /v2/models/<model>/infer.
    Returns the answer as JSON; an HTTP error fails with the client's own message."""
    return await run_python_json(
        _INFER_SCRIPT, base_url, model, protocol, json.dumps(body), python=str(python)
    )


if __name__ == "__main__":
    print(prepare_kserve_venv(default_cache_dir()))
