"""structlog set-up shared by every process: human lines on a TTY, JSON lines otherwise.

Request and resource ids are bound with ``structlog.contextvars.bind_contextvars`` so every line
logged while handling them carries them without anyone formatting strings by hand. Hot paths that
bind per request and almost never log (the gateway) use ``log_scope`` instead: one ContextVar
set per scope, merged into a line only when a line is actually logged, where structlog's binding
sets and resets one ContextVar per key on every request.
"""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

import structlog

_SECRET_KEYS = ("secret", "password", "token", "credential", "access_key")


def _drop_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(marker in key.lower() for marker in _SECRET_KEYS):
            event[key] = "***"
    return event


_NO_FIELDS: dict[str, Any] = {}
# The fields of the enclosing ``log_scope`` blocks (merged into each line by ``_merge_scope``).
_SCOPE: ContextVar[dict[str, Any]] = ContextVar("modelplane_log_scope", default=_NO_FIELDS)


class log_scope:
    """Bind ``fields`` to every line logged inside the block, on top of enclosing scopes."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = fields
        self._token: Token[dict[str, Any]] | None = None

    def __enter__(self) -> None:
        outer = _SCOPE.get()
        self._token = _SCOPE.set({**outer, **self._fields} if outer else self._fields)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            _SCOPE.reset(self._token)


def _merge_scope(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in _SCOPE.get().items():
        event.setdefault(key, value)
    return event


def configure(service: str, level: str | None = None, *, json: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger for one process (call once, at start)."""
    level_name = (level or os.environ.get("MODELPLANE_LOG_LEVEL") or "info").upper()
    numeric = logging.getLevelName(level_name)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _merge_scope,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        # Plain tracebacks: rich's default shows every frame's locals, tokens and secrets included.
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer] if json else [*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write() per line, so lines of processes sharing a terminal or pipe never interleave.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, format="%(name)s %(message)s")
