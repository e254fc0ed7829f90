"""Model folder layouts: MLServer's model-settings.json, or the artifact as it is.

MLServer finds a model by the "name" in a model-settings.json under its repository, so every
version gets ``<repo>/<model>_<version>/model-settings.json`` naming it ``<model>_<version>``.
The artifact's own settings win (users ship them, see the MLServer docs); otherwise the
implementation is derived from the model's requirements (mlserver_implementations.py). A
relative "uri" keeps working because MLServer resolves it against the folder of the settings
file, and the artifact is copied whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelplane.libs.errors import PermanentError
from modelplane.libs.resources.types import ModelSpec
from modelplane.services.placement.runtimes.mlserver_implementations import (
    implementation_for,
    missing_reason,
)

MODEL_SETTINGS = "model-settings.json"
# Model parameters named "extra.<key>" go to model-settings parameters.extra[<key>].
EXTRA_PREFIX = "extra."


class MLServerLayout:
    """Writes model-settings.json for MLServer (and MLServer-compatible custom servers).

    ``installed``: the known runtime modules the server's interpreter can import, when the agent
    knows that interpreter (it launched MLServer from its own environment); a model whose
    implementation is missing there fails here, naming what to install. None: not checked.
    """

    def __init__(self, installed: frozenset[str] | None = None) -> None:
        self._installed = installed

    def prepare(self, folder: Path, server_name: str, spec: ModelSpec, artifact_name: str) -> None:
        path = folder / MODEL_SETTINGS
        settings: dict[str, Any]
        if path.is_file():
            try:
                settings = json.loads(path.read_text())
            except (ValueError, UnicodeDecodeError) as exc:
                raise PermanentError(f"the artifact's {MODEL_SETTINGS} is not valid JSON: {exc}") from exc
            if not isinstance(settings, dict):
                raise PermanentError(f"the artifact's {MODEL_SETTINGS} must hold a JSON object")
        else:
            found = implementation_for(spec.requirements)
            if found is None:
                raise PermanentError(
                    "cannot tell which runtime implementation to use: add model-settings.json "
                    "or a requirement such as sklearn"
                )
            # A folder: MLServer looks for well-known file names in it; a single file: point at it.
            uri = "." if artifact_name == "" else f"./{artifact_name}"
            settings = {"implementation": found.implementation, "parameters": {"uri": uri}}
        implementation = settings.get("implementation")
        if self._installed is not None and isinstance(implementation, str):
            missing = missing_reason(implementation, self._installed)
            if missing:
                raise PermanentError(missing)
        settings["name"] = server_name
        parameters = settings.get("parameters")
        if not isinstance(parameters, dict):
            parameters = {}
        # The on-server name carries our version; an artifact "version" would make MLServer expose
        # /versions/<v> routes the gateway does not know about.
        parameters.pop("version", None)
        for key, value in spec.parameters.items():
            # "extra.<key>" is MLServer's parameters.extra (runtime options such as the sklearn
            # runtime's predict_fn); every other parameter is a top-level one.
            if key.startswith(EXTRA_PREFIX) and len(key) > len(EXTRA_PREFIX):
                extra = parameters.get("extra")
                parameters["extra"] = {
                    **(extra if isinstance(extra, dict) else {}),
                    key[len(EXTRA_PREFIX) :]: value,
                }
            else:
                parameters[key] = value
        settings["parameters"] = parameters
        path.write_text(json.dumps(settings, indent=2))


class PlainLayout:
    """Leaves the artifact as it is (Triton reads config.pbtxt shipped with the model)."""

    def prepare(self, folder: Path, server_name: str, spec: ModelSpec, artifact_name: str) -> None:
        return None
