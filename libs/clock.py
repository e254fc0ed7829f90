"""Wall-clock timestamps as they are stored in KV and shown to users."""

from __future__ import annotations

from datetime import UTC, datetime


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with milliseconds and a "Z" suffix, e.g. 2025-01-31T12:00:00.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
