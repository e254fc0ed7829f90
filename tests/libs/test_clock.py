"""RFC 3339 timestamps as stored in KV."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from modelplane.libs.clock import now_rfc3339


def test_now_is_utc_with_milliseconds_and_z() -> None:
    """now_rfc3339() is UTC, millisecond precision, "Z" suffix, and parses back to about now."""
    stamp = now_rfc3339()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", stamp)
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - parsed) < timedelta(seconds=5)
