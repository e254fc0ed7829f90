"""Method + path templates -> endpoints, for the gateway's own HTTP server.

A template is split at ``/``; each segment is a literal (``v2``), a parameter (``{model}``) or a
parameter with a literal suffix (``{model}:predict``, KServe V1's verb syntax). Matching compares
the request's percent-decoded segments, so ``/v2/models/my%20model/infer`` gives
``model="my model"``. Templates are indexed by segment count, which keeps the hot V2 infer
lookup to a handful of comparisons. ``match`` tells "no such path" (404) apart from "path known,
method not" (405), as aiohttp's router did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import unquote

E = TypeVar("E")

Params = dict[str, str]


@dataclass(frozen=True, slots=True)
class _Segment:
    literal: str | None  # a fixed segment, or None for a parameter
    name: str = ""
    suffix: str = ""  # a parameter's fixed ending (``:predict``)


@dataclass(slots=True)
class _Template(Generic[E]):
    template: str
    segments: tuple[_Segment, ...]
    by_method: dict[str, E] = field(default_factory=dict)

    def params(self, parts: list[str]) -> Params | None:
        found: Params = {}
        for segment, part in zip(self.segments, parts, strict=True):
            if segment.literal is not None:
                if part != segment.literal:
                    return None
            elif segment.suffix:
                if not part.endswith(segment.suffix) or len(part) == len(segment.suffix):
                    return None
                found[segment.name] = part[: -len(segment.suffix)]
            elif not part:
                return None
            else:
                found[segment.name] = part
        return found


@dataclass(frozen=True, slots=True)
class Match(Generic[E]):
    endpoint: E
    params: Params
    # The template that matched (``/v2/models/{model}/infer``): span names and logs use it.
    template: str


@dataclass(frozen=True, slots=True)
class MethodNotAllowed:
    allowed: tuple[str, ...]


def _parse(template: str) -> tuple[_Segment, ...]:
    if not template.startswith("/"):
        raise ValueError(f"route template {template!r} must start with /")
    segments = []
    for part in template.split("/")[1:]:
        if part.startswith("{"):
            name, _, suffix = part[1:].partition("}")
            if not name:
                raise ValueError(f"route template {template!r} has an unnamed parameter")
            segments.append(_Segment(None, name, suffix))
        else:
            segments.append(_Segment(part))
    return tuple(segments)


def _shape(segments: tuple[_Segment, ...]) -> tuple[tuple[str | None, str], ...]:
    return tuple((segment.literal, segment.suffix) for segment in segments)


class Router(Generic[E]):
    """Endpoints by method and path template (see the module docstring)."""

    def __init__(self) -> None:
        self._by_length: dict[int, list[_Template[E]]] = {}

    def add(self, method: str, template: str, endpoint: E) -> None:
        segments = _parse(template)
        candidates = self._by_length.setdefault(len(segments), [])
        # Parameter names do not change what a template matches: /{a} and /{b} are one template.
        shape = _shape(segments)
        known = next((t for t in candidates if _shape(t.segments) == shape), None)
        if known is None:
            known = _Template(template, segments)
            candidates.append(known)
        if method in known.by_method:
            raise ValueError(f"route {method} {template} is registered twice")
        known.by_method[method] = endpoint

    def match(self, method: str, raw_path: str) -> Match[E] | MethodNotAllowed | None:
        """The endpoint for ``method`` on ``raw_path`` (as sent, percent-encoded), if any."""
        parts = raw_path.split("/")[1:]
        if "%" in raw_path:
            parts = [unquote(part) for part in parts]
        allowed: list[str] = []
        for candidate in self._by_length.get(len(parts), ()):
            params = candidate.params(parts)
            if params is None:
                continue
            endpoint = candidate.by_method.get(method)
            if endpoint is None and method == "HEAD":
                endpoint = candidate.by_method.get("GET")
            if endpoint is not None:
                return Match(endpoint, params, candidate.template)
            allowed.extend(candidate.by_method)
        if allowed:
            return MethodNotAllowed(tuple(sorted(set(allowed))))
        return None
