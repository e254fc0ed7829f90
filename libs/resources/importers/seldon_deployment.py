"""Seldon Core v1 ``SeldonDeployment`` (machinelearning.seldon.io v1, v1alpha2, v1alpha3).

The manifest is checked as Seldon's webhook checks it (``seldon_manifest``), its graphs mapped
to what runs here (``seldon_graph``: prepackaged servers become Models, graphs Pipelines, a
root RANDOM_ABTEST a split), named and joined by traffic into an Experiment (``seldon_plan``),
and its status written in Seldon v1's shape (``seldon_status``). ``primary`` is the
deployment's name: the Model, Pipeline or Experiment default its callers reach.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.importers.base import (
    ForeignDocument,
    ImportContext,
    Importer,
    NativeStatuses,
    StatusContext,
    Translation,
)
from modelplane.libs.resources.importers.seldon_plan import plan_deployment
from modelplane.libs.resources.importers.seldon_status import FAILED, deployment_status
from modelplane.libs.resources.importers.seldon_types import API_VERSIONS, KIND


class SeldonDeploymentImporter:
    api_versions: tuple[str, ...] = API_VERSIONS
    kind: str = KIND
    depends_on: tuple[str, ...] = ()
    cluster_scoped: bool = False

    def translate(self, manifest: Mapping[str, Any], context: ImportContext) -> Translation:
        plan = plan_deployment(manifest)
        return Translation(
            resources=plan.resources,
            primary=plan.deployment.name if plan.resources else "",
            notes=plan.notes,
            problems=plan.problems,
        )

    def status(
        self,
        document: ForeignDocument,
        translation: Translation,
        natives: NativeStatuses,
        context: StatusContext,
    ) -> dict[str, Any]:
        try:
            # Pure and deterministic: the same manifest gives the plan the translation came from.
            plan = plan_deployment(document.manifest)
        except InvalidError as exc:
            return {"state": FAILED, "description": str(exc)}
        return deployment_status(document, translation, plan, natives, context)


SELDON_DEPLOYMENT: Final = SeldonDeploymentImporter()
IMPORTERS: Final[tuple[Importer, ...]] = (SELDON_DEPLOYMENT,)
