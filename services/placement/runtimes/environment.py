"""The environment a model server process gets: an allow-list, never the agent's whole environment.

Model servers run model code that a Model's author wrote; whatever is in their environment, that
code can read. The agent's environment holds what a model must never see: ``MODELPLANE_*``
settings, NATS credentials (``MODELPLANE_NATS_CREDS`` and URLs with passwords), and cloud
credentials (AWS_*, GOOGLE_*, AZURE_*, HF_TOKEN) meant for the storage service. So a server
starts from nothing and gets only:

- what a process needs to run: PATH, HOME, USER, LANG/LC_*, TZ, TMPDIR, TERM, the Python
  interpreter's own PYTHON* variables and VIRTUAL_ENV, library and GPU selection
  (LD_LIBRARY_PATH, CUDA_VISIBLE_DEVICES, ...), thread counts, CA bundles for TLS;
- the runtime's own settings, which the operator sets for it (MLSERVER_*);
- what the ServerConfig's ``env`` sets explicitly (applied last, by an admin).

A model's secret never reaches a server: the storage service uses it to download the artifact,
and the server only reads the copied files.
"""

from __future__ import annotations

from collections.abc import Mapping

# Names passed through as they are.
ALLOWED_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "TMPDIR",
        "TEMP",
        "TMP",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "HIP_VISIBLE_DEVICES",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    }
)
# Prefixes passed through: locale categories, the interpreter's settings, the runtime's own.
ALLOWED_PREFIXES = ("LC_", "PYTHON", "MLSERVER_")


def allowed(name: str) -> bool:
    """True when a variable of the agent's environment may reach a model server."""
    return name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)


def server_environment(parent: Mapping[str, str], explicit: Mapping[str, str]) -> dict[str, str]:
    """The allowed part of ``parent`` (the agent's environment), then ``explicit`` (ServerConfig env)."""
    return {**{k: v for k, v in parent.items() if allowed(k)}, **explicit}
