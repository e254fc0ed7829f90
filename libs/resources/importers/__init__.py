"""Importers of foreign kinds (one module per kind; see ``base`` for what an importer is).

``importer_for(apiVersion, kind)`` finds the importer of a manifest; ``None`` means the
manifest is native (or Seldon v2 / KServe InferenceGraph, which ``manifests.parse_manifest``
reads directly).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from typing import Final

from modelplane.libs.resources.importers.base import Importer

# Modules that define ``IMPORTERS: tuple[Importer, ...]``.
_MODULES: Final = (
    "modelplane.libs.resources.importers.serving_runtime",
    "modelplane.libs.resources.importers.inference_service",
    "modelplane.libs.resources.importers.trained_model",
    "modelplane.libs.resources.importers.seldon_deployment",
)


@cache
def registry() -> Mapping[tuple[str, str], Importer]:
    """(apiVersion, kind) -> importer, for every importer module present."""
    found: dict[tuple[str, str], Importer] = {}
    for module_name in _MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for importer in module.IMPORTERS:
            for api in importer.api_versions:
                found[(api, importer.kind)] = importer
    return found


def importer_for(api_version: str, kind: str) -> Importer | None:
    return registry().get((api_version, kind))


def importer_of_kind(kind: str) -> Importer | None:
    """The importer of a foreign kind by its name alone (``InferenceService``)."""
    for importer in registry().values():
        if importer.kind == kind:
            return importer
    return None


def foreign_kinds() -> tuple[str, ...]:
    return tuple(dict.fromkeys(importer.kind for importer in registry().values()))


# Short spellings of the foreign kinds (kubectl's short names among them), beyond "<kind>" and
# "<kind>s" in any case.
FOREIGN_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "InferenceService": ("isvc", "isvcs", "inference-service"),
    "ServingRuntime": ("serving-runtime",),
    "ClusterServingRuntime": ("cluster-serving-runtime",),
    "TrainedModel": ("tm", "tms", "trained-model"),
    "SeldonDeployment": ("sdep", "sdeps", "seldon-deployment"),
}


def foreign_kind_of(spelling: str) -> str | None:
    """The foreign kind a user's spelling names (``isvc``, ``SeldonDeployments``...), else None."""
    spelled = spelling.strip().lower()
    for kind in foreign_kinds():
        if spelled in (kind.lower(), kind.lower() + "s", *FOREIGN_ALIASES.get(kind, ())):
            return kind
    return None
