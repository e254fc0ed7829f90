"""Logged exceptions never show the frames' local variables (where tokens and secrets live)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import pytest
import structlog

from modelplane.libs import logs


@pytest.fixture
def console_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What console (TTY-style) logging writes, as `modelplane up` in a terminal logs."""
    output = io.StringIO()
    monkeypatch.setattr(sys, "stderr", output)
    logs.configure("test", "info", json=False)
    yield output
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def test_console_tracebacks_have_no_locals(console_output: io.StringIO) -> None:
    """A token held in a local variable of a failing frame is not printed with the traceback."""
    log = structlog.get_logger("test")

    def failing(token: str) -> None:
        raise ValueError("refused")

    try:
        failing("mpt_" + "s" * 43)
    except ValueError:
        log.exception("call_failed")
    err = console_output.getvalue()
    assert "call_failed" in err
    assert "ValueError: refused" in err
    assert "s" * 43 not in err
