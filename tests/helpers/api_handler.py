"""Calling the api's handler directly in tests."""

from __future__ import annotations

from typing import Any

from modelplane.libs.resources.types import Resource
from modelplane.services.api.foreign import ForeignEntry
from modelplane.services.api.handler import ControlHandler
from tests.helpers.auth import ADMIN


async def apply_native(handler: ControlHandler, doc: Any) -> tuple[Resource, str]:
    """Apply one native (or Seldon v2) manifest as admin: the stored resource and the outcome."""
    resource, outcome = await handler.apply_manifest(ADMIN, doc)
    assert not isinstance(resource, ForeignEntry)
    return resource, outcome
