"""Shared helpers of the KServe importer tests: contexts from manifests, translation, checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from modelplane.libs.resources.importers import importer_for
from modelplane.libs.resources.importers.base import (
    ForeignDocument,
    ForeignRef,
    NativeStatus,
    StaticContext,
    Translation,
)
from modelplane.libs.resources.manifests import parse_manifest, to_manifest
from modelplane.libs.resources.types import Resource

GATEWAY = "http://127.0.0.1:18080"


def load(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def document(manifest: Mapping[str, Any], generation: int = 1) -> ForeignDocument:
    metadata = manifest.get("metadata") or {}
    ref = ForeignRef(manifest["kind"], metadata["name"], metadata.get("namespace") or "default")
    return ForeignDocument(
        ref=ref, api_version=manifest["apiVersion"], manifest=manifest, generation=generation
    )


def context(*manifests: Mapping[str, Any], memo: Mapping[str, Any] | None = None) -> StaticContext:
    return StaticContext(tuple(document(m) for m in manifests), dict(memo or {}))


def translate(
    manifest: Mapping[str, Any], *others: Mapping[str, Any], memo: Mapping[str, Any] | None = None
) -> Translation:
    importer = importer_for(manifest["apiVersion"], manifest["kind"])
    assert importer is not None
    translation = importer.translate(manifest, context(*others, memo=memo))
    for resource in translation.resources:
        assert_valid_native(resource)
    return translation


def assert_valid_native(resource: Resource) -> None:
    """The api validates natives as user manifests: each must survive a round trip unchanged."""
    assert parse_manifest(to_manifest(resource)) == resource


def natives_of(translation: Translation) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r.kind, r.meta.name): to_manifest(r) for r in translation.resources}


class FakeNatives:
    """Native statuses by (kind, name); anything not given is not observed yet."""

    def __init__(self, *statuses: NativeStatus) -> None:
        self._by_key = {(s.kind, s.name): s for s in statuses}

    def __call__(self, kind: str, name: str) -> NativeStatus:
        return self._by_key.get((kind, name), NativeStatus(kind=kind, name=name, found=False))


def conditions(status: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in status["conditions"]}
