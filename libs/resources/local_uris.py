"""Relative local paths in manifests, made absolute against the manifest's folder.

The CLI reads manifests where the user keeps them; the control plane may run elsewhere (another
working directory, another machine with the same checkout). So ``storageUri: ./model`` next to a
model.yaml means that folder wherever the control plane runs: the CLI rewrites it to an absolute
``file://`` URI before sending. Remote URIs and absolute paths are left as they are.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def resolve_relative_storage(doc: Any, base_dir: str) -> Any:
    """Make a Model's relative local ``storageUri`` absolute against ``base_dir``.

    Used by the CLI with the folder of the manifest file, so ``storageUri: ./model`` next to a
    model.yaml means that folder wherever the control plane runs. Remote URIs, absolute paths
    and everything that is not a Model manifest are returned unchanged.
    """
    if not isinstance(doc, Mapping) or doc.get("kind") != "Model":
        return doc
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        return doc
    uri = spec.get("storageUri")
    if not isinstance(uri, str) or not uri.strip():
        return doc
    uri = uri.strip()
    path = uri.removeprefix("file://") if uri.startswith("file://") else uri
    if "://" in path or path.startswith("/"):
        return doc
    absolute = os.path.normpath(os.path.join(base_dir, path))
    return {**doc, "spec": {**spec, "storageUri": f"file://{absolute}"}}


# Fields of foreign manifests that hold a model's location (KServe storageUri, Seldon v1 modelUri).
_URI_KEYS = ("storageUri", "modelUri")


def resolve_relative_uris(doc: Any, base_dir: str) -> Any:
    """``resolve_relative_storage`` for foreign manifests: every ``storageUri`` or ``modelUri``
    holding a relative local path, wherever it sits in the document (an InferenceService's
    predictor, a TrainedModel's model, each node of a SeldonDeployment's graph)."""
    if not isinstance(doc, Mapping) or str(doc.get("apiVersion", "")).startswith(
        ("modelplane.io/", "mlops.seldon.io/")
    ):
        return doc

    def walk(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {
                k: (_absolute(v, base_dir) if k in _URI_KEYS and isinstance(v, str) else walk(v))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(doc)


def _absolute(uri: str, base_dir: str) -> str:
    stripped = uri.strip()
    path = stripped.removeprefix("file://")
    if not stripped or "://" in path or path.startswith("/") or ":" in path.split("/", 1)[0]:
        # Remote, absolute, or a scheme-like "remote:path" (rclone style): left for the importer.
        return uri
    return f"file://{os.path.normpath(os.path.join(base_dir, path))}"
