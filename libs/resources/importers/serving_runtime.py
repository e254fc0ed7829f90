"""KServe ServingRuntime and ClusterServingRuntime (serving.kserve.io/v1alpha1).

A runtime produces no native resources by itself: its container templates need the metadata of
the InferenceService that selects it, so the InferenceService importer builds the ServerConfig
when it selects a user runtime. Applying one is checked as KServe's admission webhook checks it
(skipped for a disabled runtime):
- within the runtime, one autoSelect format must not carry two different priorities;
- against every other enabled runtime of the same scope (ServingRuntimes of the namespace;
  ClusterServingRuntimes, built-ins included) with the same multiModel and a protocol in
  common, an autoSelect format of equal name (any case) and version must not have the same
  priority (the selection would be a coin toss).
KServe writes no status on runtimes; ours is ``{}`` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.importers.base import (
    DEFAULT_NAMESPACE,
    ForeignDocument,
    ImportContext,
    Importer,
    NativeStatuses,
    StatusContext,
    Translation,
)
from modelplane.libs.resources.importers.kserve_runtimes import (
    BUILTIN_RUNTIMES,
    CLUSTER_SERVING_RUNTIME,
    SERVING_RUNTIME,
    Runtime,
    SupportedFormat,
    runtime_from_manifest,
)

API_VERSION: Final = "serving.kserve.io/v1alpha1"


def namespace_of(manifest: Mapping[str, Any]) -> str:
    return str((manifest.get("metadata") or {}).get("namespace") or DEFAULT_NAMESPACE)


def stored_runtimes(
    documents: Iterable[ForeignDocument], kind: str, namespace: str | None = None
) -> list[Runtime]:
    """The runtimes of stored documents, of ``namespace`` when given (one that no longer parses
    is left out: it was checked when applied, only a change of these rules could fail it)."""
    found: list[Runtime] = []
    for document in documents:
        if namespace is not None and document.ref.namespace not in (namespace, ""):
            continue
        try:
            found.append(runtime_from_manifest(document.manifest, kind))
        except InvalidError:
            continue
    return found


def _same_format(a: SupportedFormat, b: SupportedFormat) -> bool:
    return a.name.lower() == b.name.lower() and a.version == b.version


def check_own_priorities(runtime: Runtime) -> None:
    seen: dict[str, int | None] = {}
    for index, fmt in enumerate(runtime.formats):
        if not fmt.auto_select:
            continue
        if fmt.name not in seen:
            seen[fmt.name] = fmt.priority
            continue
        earlier = seen[fmt.name]
        if earlier is not None and fmt.priority is not None and earlier != fmt.priority:
            raise InvalidError(
                f"different priorities assigned for the model format {fmt.name} under the "
                f"{runtime.kind.lower()} {runtime.name} ({earlier} and {fmt.priority})",
                field=f"spec.supportedModelFormats[{index}].priority",
            )


def check_against(runtime: Runtime, others: Iterable[Runtime]) -> None:
    for other in others:
        if other.name == runtime.name or other.disabled or other.multi_model != runtime.multi_model:
            continue
        if not set(other.protocols) & set(runtime.protocols):
            continue
        for index, fmt in enumerate(runtime.formats):
            for theirs in other.formats:
                if not (fmt.auto_select and theirs.auto_select and _same_format(fmt, theirs)):
                    continue
                if fmt.priority is not None and fmt.priority == theirs.priority:
                    label = f"{fmt.name}:{fmt.version}" if fmt.version else fmt.name
                    raise InvalidError(
                        f"same priority {fmt.priority} assigned for the model format {label} in the "
                        f"{runtime.kind.lower()}s {other.name} and {runtime.name}: auto-selection "
                        "would have no winner",
                        field=f"spec.supportedModelFormats[{index}].priority",
                    )


class ServingRuntimeImporter:
    api_versions: tuple[str, ...] = (API_VERSION,)
    depends_on: tuple[str, ...] = ()

    def __init__(self, kind: str, cluster_scoped: bool) -> None:
        self.kind = kind
        self.cluster_scoped = cluster_scoped

    def translate(self, manifest: Mapping[str, Any], context: ImportContext) -> Translation:
        runtime = runtime_from_manifest(manifest, self.kind)
        notes = [f"{self.kind} {runtime.name}: kept for InferenceServices to select; no native resources"]
        if runtime.disabled:
            notes.append("disabled: never selected")
            return Translation(notes=tuple(notes))
        check_own_priorities(runtime)
        namespace = None if self.cluster_scoped else namespace_of(manifest)
        peers = stored_runtimes(context.foreign_of_kind(self.kind), self.kind, namespace)
        if self.cluster_scoped:
            user_names = {p.name for p in peers}
            peers += [b for b in BUILTIN_RUNTIMES if b.name not in user_names and b.name != runtime.name]
        check_against(runtime, peers)
        if any(b.name == runtime.name for b in BUILTIN_RUNTIMES):
            notes.append(f"replaces the built-in runtime {runtime.name}")
        return Translation(notes=tuple(notes))

    def status(
        self,
        document: ForeignDocument,
        translation: Translation,
        natives: NativeStatuses,
        context: StatusContext,
    ) -> dict[str, Any]:
        # KServe's runtimes have no status.
        return {}


SERVING_RUNTIME_IMPORTER: Final = ServingRuntimeImporter(kind=SERVING_RUNTIME, cluster_scoped=False)
CLUSTER_SERVING_RUNTIME_IMPORTER: Final = ServingRuntimeImporter(
    kind=CLUSTER_SERVING_RUNTIME, cluster_scoped=True
)

IMPORTERS: Final[tuple[Importer, ...]] = (SERVING_RUNTIME_IMPORTER, CLUSTER_SERVING_RUNTIME_IMPORTER)
