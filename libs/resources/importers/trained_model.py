"""KServe TrainedModel (serving.kserve.io/v1alpha1) -> a native Model on its parent's Server.

``T`` with ``spec.inferenceService: N`` becomes Model ``T`` on Server ``N`` (the multi-model
InferenceService's server), requiring ``spec.model.framework`` (lower-case), with the model's
memory and storageUri. No Model, and a problem, when:
- ``N`` is not applied (InferenceServiceNotFound, naming spec.inferenceService; KServe deletes
  such a TrainedModel instead);
- ``N`` is not multi-model: it has storage, or serves huggingface (IsNotMMSPredictor);
- the memory does not fit (MemoryResourceNotAvailable): KServe admits TrainedModels one by one
  while the sum of the admitted ones' memory, this one included, stays within the predictor
  container's memory limit (no limit: nothing fits). Here the admission is re-derived
  without a clock: the parent's TrainedModels are taken in name order and each is admitted
  when it fits beside those admitted before it, so adding a TrainedModel never evicts one
  that was admitted (unless it sorts before it), and the outcome does not depend on the order
  of applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import field_validator

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.importers.base import (
    DEFAULT_NAMESPACE,
    ForeignDocument,
    ImportContext,
    Importer,
    NativeStatuses,
    Problem,
    StatusContext,
    Translation,
)
from modelplane.libs.resources.importers.inference_service import KIND as INFERENCE_SERVICE
from modelplane.libs.resources.importers.inference_service import select_for
from modelplane.libs.resources.importers.kserve_predictor import parse_predictor
from modelplane.libs.resources.importers.kserve_status import (
    INFERENCE_SERVICE_NOT_FOUND,
    INFERENCE_SERVICE_NOT_READY,
    IS_NOT_MMS_PREDICTOR,
    MEMO_PROTOCOL,
    MEMORY_RESOURCE_NOT_AVAILABLE,
    trained_model_status,
)
from modelplane.libs.resources.importers.serving_runtime import namespace_of
from modelplane.libs.resources.manifest_base import Lenient, validate_model
from modelplane.libs.resources.quantity import format_bytes, parse_bytes
from modelplane.libs.resources.types import NAME_MAX_LENGTH, NAME_PATTERN, Meta, Model, ModelSpec

API_VERSION: Final = "serving.kserve.io/v1alpha1"
KIND: Final = "TrainedModel"


class _Model(Lenient):
    storageUri: str
    framework: str
    memory: str | int

    @field_validator("storageUri", "framework")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()


class _Spec(Lenient):
    inferenceService: str
    model: _Model


def _name(manifest: Mapping[str, Any]) -> str:
    metadata = manifest.get("metadata")
    name = str(metadata.get("name") or "") if isinstance(metadata, Mapping) else ""
    if not name:
        raise InvalidError("is required", field="metadata.name")
    if len(name) > NAME_MAX_LENGTH or not NAME_PATTERN.match(name):
        raise InvalidError(
            f"{name!r} is not a valid name here: the native Model takes it, so lower-case letters, digits "
            f"and '-', starting and ending with a letter or digit, at most {NAME_MAX_LENGTH} characters",
            field="metadata.name",
        )
    return name


@dataclass(frozen=True, slots=True)
class _Sibling:
    name: str
    memory: int


def _siblings(context: ImportContext, parent: str, namespace: str, own: str) -> list[_Sibling]:
    """The parent's other TrainedModels with a readable memory (one that is not readable was
    refused when applied)."""
    found: list[_Sibling] = []
    for document in context.foreign_of_kind(KIND):
        if document.ref.name == own or document.ref.namespace not in (namespace, ""):
            continue
        spec = document.manifest.get("spec")
        if not isinstance(spec, Mapping) or spec.get("inferenceService") != parent:
            continue
        model = spec.get("model")
        try:
            memory = parse_bytes(
                model.get("memory") if isinstance(model, Mapping) else None, "spec.model.memory"
            )
        except InvalidError:
            continue
        found.append(_Sibling(document.ref.name, memory))
    return found


def admitted(candidates: list[_Sibling], limit: int) -> set[str]:
    """Names admitted in name order, each when it fits beside the ones admitted before."""
    used, names = 0, set()
    for sibling in sorted(candidates, key=lambda s: s.name):
        if used + sibling.memory <= limit:
            used += sibling.memory
            names.add(sibling.name)
    return names


class TrainedModelImporter:
    api_versions: tuple[str, ...] = (API_VERSION,)
    kind: str = KIND
    # A sibling's memory changes what fits, so TrainedModels re-derive one another.
    depends_on: tuple[str, ...] = (INFERENCE_SERVICE, KIND)
    cluster_scoped: bool = False

    def translate(self, manifest: Mapping[str, Any], context: ImportContext) -> Translation:
        name = _name(manifest)
        spec: _Spec = validate_model(_Spec, manifest.get("spec"), "spec")
        memory = parse_bytes(spec.model.memory, "spec.model.memory")
        parent_name = spec.inferenceService.strip()
        namespace = namespace_of(manifest) or DEFAULT_NAMESPACE
        parent = context.foreign(INFERENCE_SERVICE, parent_name, namespace)
        if parent is None:
            return _refused(
                "spec.inferenceService",
                INFERENCE_SERVICE_NOT_FOUND,
                f"InferenceService {parent_name!r} (spec.inferenceService) is not applied: "
                f"TrainedModel {name} cannot deploy",
            )
        try:
            plan = parse_predictor((parent.manifest.get("spec") or {}).get("predictor"))
        except InvalidError as exc:
            # Stored parents were accepted; only a change of the rules could fail one.
            return _refused(
                "spec.inferenceService", INFERENCE_SERVICE_NOT_READY, f"InferenceService {parent_name}: {exc}"
            )
        protocol = select_for(parent.manifest, plan.request, context).protocol if plan.request else "v1"
        if plan.request is None or not plan.multi_model:
            return _refused(
                "spec.inferenceService",
                IS_NOT_MMS_PREDICTOR,
                f'Inference Service "{parent_name}" predictor is not configured for multi-model serving '
                f'(it has its own storage). Trained Model "{name}" cannot deploy',
                protocol,
            )
        siblings = [*_siblings(context, parent_name, namespace, name), _Sibling(name, memory)]
        limit = plan.memory_limit
        if name not in admitted(siblings, limit):
            total = sum(s.memory for s in siblings)
            return _refused(
                "spec.model.memory",
                MEMORY_RESOURCE_NOT_AVAILABLE,
                f'Inference Service "{parent_name}" memory resources are not available: its predictor\'s '
                f"memory limit is {format_bytes(limit) if limit else 'unset'}, its TrainedModels ask "
                f'{format_bytes(total)}. Trained Model "{name}" cannot deploy',
                protocol,
            )
        model = Model(
            meta=Meta(name=name),
            spec=ModelSpec(
                storage_uri=spec.model.storageUri,
                requirements=(spec.model.framework.lower(),),
                memory_bytes=memory,
                server=parent_name,
            ),
        )
        return Translation(
            resources=(model,),
            primary=name,
            notes=(
                f"TrainedModel {name}: Model on Server {parent_name} ({format_bytes(memory)} of {format_bytes(limit)})",
            ),
            memo={MEMO_PROTOCOL: protocol},
        )

    def status(
        self,
        document: ForeignDocument,
        translation: Translation,
        natives: NativeStatuses,
        context: StatusContext,
    ) -> dict[str, Any]:
        return trained_model_status(document, translation, natives, context)


def _refused(field: str, reason: str, message: str, protocol: str = "v1") -> Translation:
    return Translation(
        problems=(Problem(field=field, reason=reason, message=message),), memo={MEMO_PROTOCOL: protocol}
    )


TRAINED_MODEL_IMPORTER: Final = TrainedModelImporter()

IMPORTERS: Final[tuple[Importer, ...]] = (TRAINED_MODEL_IMPORTER,)
