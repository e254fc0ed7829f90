"""Foreign resources outside the ``default`` namespace: the native names they get.

Native resources have no namespace (one name per kind), while KServe and Seldon users run the
same name in several namespaces. A foreign resource in namespace ``ns`` other than ``default``
is therefore translated as if it were named ``<ns>--<name>``: every native resource it derives
carries that prefix (``team-a--sklearn-iris``, ``team-a--sklearn-iris-canary``), so the same
name in two namespaces never collides, and a name in ``default`` keeps its name unchanged.

``namespaced_view`` makes that translation input: the manifest with ``metadata.name`` prefixed,
and the fields that name another namespaced foreign resource prefixed too (a TrainedModel's
``spec.inferenceService``; an InferenceService's ``runtime`` when it names a ServingRuntime of
its namespace rather than a ClusterServingRuntime). The gateway resolves the other way with
``native_name``: ``Host: <name>.<ns>.<domain>``, ``/seldon/<ns>/<name>/...`` and the
``seldon-namespace`` header all reach ``native_name(name, ns)``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, Final

from modelplane.libs.resources.importers.base import (
    DEFAULT_NAMESPACE,
    ForeignDocument,
    ForeignRef,
    Importer,
    StaticContext,
    Translation,
)
from modelplane.libs.resources.namespacing import SEPARATOR, native_name

__all__ = [
    "SEPARATOR",
    "namespace_documents",
    "namespaced_view",
    "native_name",
    "translate_in_namespace",
    "view_of",
]

# Foreign kinds whose names another resource of the namespace refers to: renamed like the
# resources that refer to them. ClusterServingRuntimes are cluster-scoped: never renamed.
_SERVING_RUNTIME: Final = "ServingRuntime"


def namespaced_view(document: ForeignDocument, runtimes: Sequence[str] = ()) -> ForeignDocument:
    """``document`` as its importer translates it (see the module docstring); ``runtimes`` are
    the names of the ServingRuntimes of its namespace."""
    namespace = document.ref.namespace
    if namespace in ("", DEFAULT_NAMESPACE):
        return document
    manifest: dict[str, Any] = copy.deepcopy(dict(document.manifest))
    renamed = native_name(document.ref.name, namespace)
    metadata = manifest.get("metadata")
    if isinstance(metadata, dict):
        metadata["name"] = renamed
    spec = manifest.get("spec")
    if isinstance(spec, dict):
        if document.ref.kind == "TrainedModel" and isinstance(spec.get("inferenceService"), str):
            spec["inferenceService"] = native_name(spec["inferenceService"], namespace)
        if document.ref.kind == "InferenceService":
            _rename_runtime(spec.get("predictor"), namespace, runtimes)
    ref = ForeignRef(document.ref.kind, renamed, namespace)
    return ForeignDocument(ref, document.api_version, manifest, document.generation)


def _rename_runtime(predictor: Any, namespace: str, runtimes: Sequence[str]) -> None:
    """``predictor[.model].runtime`` naming a ServingRuntime of the namespace (which wins over
    a ClusterServingRuntime of the same name, as in KServe) -> that runtime's view name."""
    if not isinstance(predictor, dict):
        return
    for holder in (predictor, predictor.get("model")):
        if isinstance(holder, dict) and holder.get("runtime") in runtimes:
            holder["runtime"] = native_name(str(holder["runtime"]), namespace)


def namespace_documents(documents: Sequence[ForeignDocument], namespace: str) -> tuple[ForeignDocument, ...]:
    """What a resource of ``namespace`` may see: the documents of its namespace (as views) and
    the cluster-scoped ones."""
    own = [d for d in documents if d.ref.namespace == namespace]
    runtimes = [d.ref.name for d in own if d.ref.kind == _SERVING_RUNTIME]
    cluster = [d for d in documents if d.ref.namespace == ""]
    return (*(namespaced_view(d, runtimes) for d in own), *cluster)


def view_of(document: ForeignDocument, documents: Sequence[ForeignDocument]) -> ForeignDocument:
    """``namespaced_view`` of ``document`` among ``documents`` (for its namespace's runtimes)."""
    runtimes = [
        d.ref.name
        for d in documents
        if d.ref.kind == _SERVING_RUNTIME and d.ref.namespace == document.ref.namespace
    ]
    return namespaced_view(document, runtimes)


def translate_in_namespace(
    importer: Importer,
    ref: ForeignRef,
    api_version: str,
    manifest: Mapping[str, Any],
    documents: Sequence[ForeignDocument],
    memo: Mapping[str, Any] | None = None,
) -> Translation:
    """Translate a foreign manifest seeing the documents of its namespace and the cluster-scoped
    ones, outside ``default`` as its namespaced view. ``documents`` may include it."""
    view = view_of(ForeignDocument(ref, api_version, manifest), documents)
    context = StaticContext(namespace_documents(documents, ref.namespace), memo or {})
    return importer.translate(view.manifest, context)
