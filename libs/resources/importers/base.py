"""What every importer of a foreign kind is: a pure translation, both ways.

An importer turns one foreign manifest (a KServe InferenceService, a Seldon v1
SeldonDeployment, ...) into the native resources that serve it, and the observed state of those
native resources back into the status the foreign kind's users read. No I/O: what else is
applied (the ServingRuntimes an InferenceService may select, the parent of a TrainedModel)
arrives in an ``ImportContext``; what the native resources are doing arrives as
``NativeStatus`` values. The api stores the foreign manifest as written, applies the
resources a ``Translation`` holds (owned by the foreign resource: re-derived on every change,
deleted with it), and computes the foreign status on read.

Errors: a manifest that cannot be accepted raises ``InvalidError`` naming the field (dotted
path from the document root, e.g. ``spec.predictor.model.modelFormat.name``). A manifest that
is valid but cannot run here (a custom container, Triton without a binary, a format no runtime
supports) is accepted: the translation carries a ``Problem`` and the status reports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from modelplane.libs.resources.types import Resource

DEFAULT_NAMESPACE: Final = "default"


@dataclass(frozen=True, slots=True)
class ForeignRef:
    """Which foreign resource: kind as its users spell it (``InferenceService``), and name."""

    kind: str
    name: str
    namespace: str = DEFAULT_NAMESPACE

    def key(self) -> str:
        """The record's KV key: ``<Kind>.<namespace>.<name>``."""
        return f"{self.kind}.{self.namespace}.{self.name}"

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something the manifest asks for that does not run here (the resource is still accepted).

    ``reason`` is the foreign kind's own reason word where it has one (KServe's
    NoSupportingRuntime, RuntimeNotRecognized, ...), else ``NotSupportedLocally``."""

    field: str
    reason: str
    message: str


NOT_SUPPORTED_LOCALLY: Final = "NotSupportedLocally"


@dataclass(frozen=True, slots=True)
class Translation:
    """What one foreign manifest becomes.

    ``resources``: the native resources, in the order they should be applied (ServerConfigs and
    Servers before Models, Models before Pipelines and Experiments). The api sets their owner.
    ``primary``: the native name the foreign resource's clients call (an InferenceService's
    ``/v1/models/<name>:predict``), "" when it serves nothing itself (a ServingRuntime).
    ``notes``: why, in words (runtime chosen and why, defaults filled): ``modelplane convert``
    prints them. ``memo``: what the importer wants back next time it translates the same
    resource (``ImportContext.memo``), e.g. the last rolled-out version of a canary. JSON only.
    """

    resources: tuple[Resource, ...] = ()
    primary: str = ""
    notes: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    memo: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ForeignDocument:
    """A foreign resource as stored: its manifest exactly as written, and its translation."""

    ref: ForeignRef
    api_version: str
    manifest: Mapping[str, Any]
    generation: int = 1


class ImportContext(Protocol):
    """What an importer may read about everything else that is applied (read-only)."""

    def foreign(self, kind: str, name: str, namespace: str = DEFAULT_NAMESPACE) -> ForeignDocument | None:
        """Another foreign resource (e.g. a TrainedModel's parent InferenceService)."""
        ...

    def foreign_of_kind(self, kind: str) -> Sequence[ForeignDocument]:
        """Every stored foreign resource of ``kind`` (e.g. all ServingRuntimes), by name."""
        ...

    def memo(self) -> Mapping[str, Any]:
        """What the previous translation of this same resource left (``Translation.memo``)."""
        ...


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition of a native status (PipelineReady, ModelsReady, ...)."""

    type: str
    status: bool
    reason: str = ""
    last_change: str = ""


@dataclass(frozen=True, slots=True)
class NativeStatus:
    """The observed state of one native resource, as the status service reports it.

    ``state`` uses Seldon v2's words: ModelAvailable, ModelProgressing, ModelFailed,
    ScheduleFailed, ModelTerminated, ... for Models; ServerReady/ServerNotReady... for Servers;
    PipelineReady/PipelineFailed... for Pipelines; ExperimentReady/... for Experiments. ``""``
    with ``found=False`` when nothing is known yet (not applied, or not observed yet)."""

    kind: str
    name: str
    state: str = ""
    reason: str = ""
    available_replicas: int = 0
    total_replicas: int = 0
    generation: int = 0
    observed_generation: int = 0
    last_change: str = ""
    conditions: tuple[Condition, ...] = ()
    found: bool = True


@dataclass(frozen=True, slots=True)
class StatusContext:
    """What the status of a foreign kind needs beyond the native statuses."""

    # Base URL of the inference gateway clients use, e.g. http://127.0.0.1:9080.
    gateway_url: str
    # Base URL of the gateway's gRPC endpoint, host:port.
    gateway_grpc: str = ""


class NativeStatuses(Protocol):
    def __call__(self, kind: str, name: str) -> NativeStatus: ...


class Importer(Protocol):
    """One foreign kind. Module-level singletons registered in ``importers/__init__.py``."""

    # The apiVersions (group/version) and kind this importer reads.
    api_versions: tuple[str, ...]
    kind: str
    # Foreign kinds whose change re-derives every resource of this kind (an InferenceService
    # depends on ServingRuntime and ClusterServingRuntime; a TrainedModel on InferenceService).
    depends_on: tuple[str, ...]
    # Cluster-scoped kinds (ClusterServingRuntime) ignore metadata.namespace.
    cluster_scoped: bool

    def translate(self, manifest: Mapping[str, Any], context: ImportContext) -> Translation:
        """The native resources; InvalidError naming the field when the manifest is invalid."""
        ...

    def status(
        self,
        document: ForeignDocument,
        translation: Translation,
        natives: NativeStatuses,
        context: StatusContext,
    ) -> dict[str, Any]:
        """The foreign kind's own ``status`` object (JSON-ready)."""
        ...


@dataclass(frozen=True, slots=True)
class StaticContext:
    """An ``ImportContext`` over a fixed set of documents (the api builds one per apply from
    KV plus the documents of the same apply; tests and ``convert`` build their own)."""

    documents: tuple[ForeignDocument, ...] = ()
    previous_memo: Mapping[str, Any] = field(default_factory=dict)

    def foreign(self, kind: str, name: str, namespace: str = DEFAULT_NAMESPACE) -> ForeignDocument | None:
        for document in self.documents:
            ref = document.ref
            if ref.kind == kind and ref.name == name and ref.namespace in (namespace, ""):
                return document
        return None

    def foreign_of_kind(self, kind: str) -> Sequence[ForeignDocument]:
        return sorted((d for d in self.documents if d.ref.kind == kind), key=lambda d: d.ref.name)

    def memo(self) -> Mapping[str, Any]:
        return self.previous_memo

    def with_memo(self, memo: Mapping[str, Any]) -> StaticContext:
        return StaticContext(self.documents, memo)
