"""Kubernetes-style memory quantities ("100Mi", "1G", "512") to bytes and back."""

from __future__ import annotations

import re

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.bounds import INT64_MAX

_SUFFIX = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
}  # fmt: skip
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kMGTP]i?|Ki)?\s*$")


def parse_bytes(value: str | int | float | None, field: str) -> int:
    """Bytes in a quantity; 0 for None/empty. InvalidError naming ``field`` when malformed."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise InvalidError(f"expected a memory quantity like 100Mi, got {value!r}", field=field)
    if isinstance(value, int | float):
        if value < 0:
            raise InvalidError("must not be negative", field=field)
        if value != value or value == float("inf"):
            raise InvalidError(f"expected a memory quantity like 100Mi, got {value!r}", field=field)
        return _bounded(int(value), field)
    match = _QUANTITY.match(value)
    if match is None:
        raise InvalidError(f"expected a memory quantity like 100Mi or 1Gi, got {value!r}", field=field)
    number, suffix = match.groups()
    return _bounded(int(float(number) * _SUFFIX[suffix or ""]), field)


def _bounded(size: int, field: str) -> int:
    # Sizes travel as protobuf int64: a larger one is the user's typo, not a 500 later.
    if size > INT64_MAX:
        raise InvalidError(f"{size} bytes is more than the largest size, {INT64_MAX}", field=field)
    return size


def format_bytes(value: int) -> str:
    """The shortest exact binary quantity for ``value`` ("100Mi"), or plain bytes."""
    if value <= 0:
        return "0"
    for suffix in ("Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _SUFFIX[suffix]
        if value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)
