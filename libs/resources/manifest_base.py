"""The pydantic bases of every manifest model: native kinds forbid unknown fields (a typo must
not be silently ignored), imported ones ignore them (moving users carry fields we do not act on).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from modelplane.libs.errors import InvalidError


# Numbers must be finite: YAML's .nan/.inf (and Python's JSON NaN) would reach the autoscaler's
# and the gateway's arithmetic.
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, allow_inf_nan=False)


def compact(values: dict[str, Any]) -> dict[str, Any]:
    """Drop unset fields (None, empty, zero, False) of a nested manifest section."""
    return {k: v for k, v in values.items() if v not in (None, "", [], {}, 0, False)}


def _loc(error: Mapping[str, Any], prefix: str) -> str:
    parts = [str(p) for p in error.get("loc", ()) if not isinstance(p, int)]
    return ".".join([prefix, *parts]) if prefix else ".".join(parts)


def validate_model(model: type[BaseModel], data: Any, prefix: str) -> Any:
    """``data`` validated as ``model``; InvalidError naming the first offending field under ``prefix``."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidError(f"must be a mapping, got {type(data).__name__}", field=prefix)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = str(first.get("msg", "invalid"))
        if first.get("type") == "missing":
            message = "is required"
        elif first.get("type") == "extra_forbidden":
            message = "unknown field"
        message = message.removeprefix("Value error, ")
        raise InvalidError(message, field=_loc(first, prefix)) from exc
