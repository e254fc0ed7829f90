"""GJSON paths over parsed JSON: how a KServe InferenceGraph decides its conditions.

KServe's router runs a step when ``gjson.GetBytes(body, condition).Exists()``. This module reads
the same path syntax (github.com/tidwall/gjson, SYNTAX.md) and evaluates it on a document that is
already parsed (dicts, lists, str, int/float, bool, None), so a condition costs no re-parse.

Design: a path is compiled once into a tuple of ``_Step`` (a segment plus whether a ``|`` or a
``.`` led to it) and then walked. ``compile_path`` is cached and raises ``InvalidError`` naming
the path, so a graph's conditions can be checked when it is applied.

Supported, with GJSON's meaning:

- keys ``a.b``, ``\\`` escapes (``fav\\.movie``), ``*``/``?`` wildcards (first matching key in
  document order), array indexes ``a.0``;
- ``#``: an array's length; ``a.#.b``: ``b`` of every element (missing ones left out);
- queries ``#(path op value)`` (first match) and ``#(...)#`` (all matches), ops ``==`` (or ``=``),
  ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``%`` (like, ``*``/``?``) and ``!%``; no op tests that
  the path exists; an empty path queries the element itself (``#(=="fb")``); queries nest;
  ``~true``/``~false`` compare truthiness, ``~*`` existence, ``~null`` absence or null;
- ``.`` vs ``|`` after ``#`` and ``#(...)#``: ``.rest`` maps the whole rest of the path (later
  pipes included, as in GJSON) over the elements, ``|rest`` applies to the array itself;
- modifiers ``@this``, ``@reverse``, ``@flatten``, ``@keys``, ``@values``, ``@join``, ``@valid``,
  ``@ugly``, ``@pretty`` (formatting modifiers are identities on parsed values);
- multipaths ``[p1,p2]`` and ``{p1,"key":p2}`` (missing values left out) and literals ``!true``,
  ``!"text"``, ``!{...}``, so KServe's ``[@this].#(predictions.0=="dog")`` works.

Comparisons follow GJSON: a string compares as a string with the right side (quotes optional), a
number numerically (a right side that is not a number reads as 0), ``true``/``false`` only with
``==``/``!=`` and the orderings GJSON gives them, null/objects/arrays match no operator. A JSON
null exists (``a`` of ``{"a": null}`` exists), as in GJSON.

Deliberately stricter than GJSON: a path GJSON would quietly find nothing for because it is
malformed (unbalanced brackets, an unknown ``@modifier``, an empty key) is an error, since a
condition that can never match is a mistake worth reporting at apply time. A key that starts
with ``@`` or ``!`` is written escaped (``\\@type``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from modelplane.libs.errors import InvalidError

_SEPARATORS = ".|"
_OPERATOR_CHARS = "=!<>%"
_OPENERS = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True, slots=True)
class Result:
    """What a path found: ``exists`` is GJSON's ``Exists()``; ``value`` the parsed JSON value."""

    value: Any = None
    exists: bool = False


MISSING = Result()


# ---- compiled paths ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    # Set when the key has unescaped wildcards: matched against object keys.
    pattern: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class _Count:
    """``#``: the length of an array, or (followed by ``.``) each of its elements."""


@dataclass(frozen=True, slots=True)
class _Query:
    path: tuple[_Step, ...]  # empty: the element itself
    op: str  # "" tests existence only
    value: str
    all: bool


@dataclass(frozen=True, slots=True)
class _Modifier:
    name: str


@dataclass(frozen=True, slots=True)
class _Multi:
    as_object: bool
    items: tuple[tuple[str | None, tuple[_Step, ...]], ...]


@dataclass(frozen=True, slots=True)
class _Literal:
    value: Any


_Segment = _Key | _Count | _Query | _Modifier | _Multi | _Literal


@dataclass(frozen=True, slots=True)
class _Step:
    segment: _Segment
    piped: bool  # reached through "|" rather than "."


@dataclass(frozen=True, slots=True)
class Path:
    """A compiled GJSON path."""

    text: str
    steps: tuple[_Step, ...]

    def get(self, doc: Any) -> Result:
        return _walk(doc, self.steps, 0)


def get(doc: Any, path: str) -> Result:
    """What ``path`` finds in the parsed JSON ``doc``; ``InvalidError`` if the path is malformed."""
    return compile_path(path).get(doc)


def matches(doc: Any, condition: str) -> bool:
    """KServe's test of a step condition: the path finds something in ``doc``."""
    return compile_path(condition).get(doc).exists


@lru_cache(maxsize=1024)
def compile_path(text: str) -> Path:
    """Parse ``text`` once (cached); ``InvalidError`` naming the path when it is malformed."""
    try:
        parser = _Parser(text)
        steps = parser.path(stops="")
    except _SyntaxError as exc:
        raise InvalidError(f"invalid GJSON path {text!r}: {exc}") from None
    return Path(text, steps)


# ---- parsing ------------------------------------------------------------------------------------
class _SyntaxError(Exception):
    pass


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def path(self, stops: str) -> tuple[_Step, ...]:
        """Steps up to the end of the text or an unnested character in ``stops``."""
        if not self._peek() or self._peek() in stops:
            raise _SyntaxError(f"empty path at position {self.pos}")
        steps: list[_Step] = []
        piped = False
        while True:
            steps.append(_Step(self._segment(stops, first=not steps), piped))
            char = self._peek()
            if not char or char in stops:
                return tuple(steps)
            if char not in _SEPARATORS:
                raise _SyntaxError(f"unexpected {char!r} at position {self.pos}")
            piped = char == "|"
            self.pos += 1
            if not self._peek() or self._peek() in stops:
                raise _SyntaxError(f"the path ends with {char!r}")

    def _segment(self, stops: str, first: bool) -> _Segment:
        char = self._peek()
        if char == "#":
            return self._hash()
        if char == "@":
            return self._modifier(stops)
        if char in ("[", "{"):
            return self._multi()
        if char == "!" and first:
            return _Literal(self._json_value(self.pos + 1))
        return self._key(stops)

    def _hash(self) -> _Count | _Query:
        self.pos += 1
        char = self._peek()
        if char not in ("(", "["):  # "#[...]" is GJSON's older query spelling
            if char and char not in _SEPARATORS and char not in ",]}":
                raise _SyntaxError(f"unexpected {char!r} after '#' at position {self.pos}")
            return _Count()
        end = _closing(self.text, self.pos)
        inner = self.text[self.pos + 1 : end]
        self.pos = end + 1
        everything = self._peek() == "#"
        if everything:
            self.pos += 1
        return _query(inner, everything)

    def _modifier(self, stops: str) -> _Modifier:
        start = self.pos + 1
        end = start
        while end < len(self.text) and (self.text[end].isalnum() or self.text[end] == "_"):
            end += 1
        name = self.text[start:end]
        if name not in _MODIFIERS:
            known = ", ".join(f"@{m}" for m in _MODIFIERS)
            raise _SyntaxError(f"unknown modifier @{name} (known: {known})")
        self.pos = end
        if self._peek() == ":":  # an argument: JSON or plain characters; ours ignore it
            if self.pos + 1 < len(self.text) and self.text[self.pos + 1] in '[{"':
                self.pos = _closing(self.text, self.pos + 1) + 1
            else:
                while self._peek() and self._peek() not in _SEPARATORS and self._peek() not in stops:
                    self.pos += 1
        return _Modifier(name)

    def _multi(self) -> _Multi:
        as_object = self._peek() == "{"
        close = "}" if as_object else "]"
        self.pos += 1
        items: list[tuple[str | None, tuple[_Step, ...]]] = []
        while True:
            while self._peek() == " ":
                self.pos += 1
            key: str | None = None
            if as_object and self._peek() == '"':
                end = _closing(self.text, self.pos)
                key = _json_string(self.text[self.pos : end + 1])
                self.pos = end + 1
                if self._peek() != ":":
                    raise _SyntaxError(f"expected ':' after the key {key!r} at position {self.pos}")
                self.pos += 1
            if self._peek() == "!":
                steps: tuple[_Step, ...] = (
                    _Step(_Literal(self._json_value(self.pos + 1, stops=",")), False),
                )
            else:
                steps = self.path(stops="," + close)
            items.append((key, steps))
            char = self._peek()
            if char == ",":
                self.pos += 1
                continue
            if char == close:
                self.pos += 1
                return _Multi(as_object, tuple(items))
            raise _SyntaxError(f"missing {close!r} to close the multipath")

    def _json_value(self, start: int, stops: str = "") -> Any:
        """A literal's JSON value starting at ``start`` (GJSON's ``!true``, ``!"x"``, ``!{...}``)."""
        if start < len(self.text) and self.text[start] in '[{"':
            end = _closing(self.text, start) + 1
        else:
            end = start
            while end < len(self.text) and self.text[end] not in _SEPARATORS + stops + "]}":
                end += 1
        raw = self.text[start:end]
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _SyntaxError(f"the literal {raw!r} is not JSON") from None
        self.pos = end
        return value

    def _key(self, stops: str) -> _Key:
        chars: list[str] = []
        regex: list[str] = []
        wild = False
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\\":
                if self.pos + 1 >= len(text):
                    raise _SyntaxError("the path ends with an escaping '\\'")
                char = text[self.pos + 1]
                chars.append(char)
                regex.append(re.escape(char))
                self.pos += 2
                continue
            if char in _SEPARATORS or char in stops:
                break
            if char in "*?":
                wild = True
                regex.append(".*" if char == "*" else ".")
            else:
                regex.append(re.escape(char))
            chars.append(char)
            self.pos += 1
        if not chars:
            raise _SyntaxError(f"empty key at position {self.pos}")
        name = "".join(chars)
        return _Key(name, re.compile("".join(regex), re.DOTALL) if wild else None)


def _closing(text: str, start: int) -> int:
    """The index of what closes the bracket or quote at ``start`` (nesting and strings aware)."""
    if text[start] == '"':
        index = start + 1
        while index < len(text):
            if text[index] == "\\":
                index += 2
                continue
            if text[index] == '"':
                return index
            index += 1
        raise _SyntaxError(f"unterminated string starting at position {start}")
    expected = [_OPENERS[text[start]]]
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == '"':
            index = _closing(text, index) + 1
            continue
        if char in _OPENERS:
            expected.append(_OPENERS[char])
        elif char in ")]}":
            if char != expected[-1]:
                raise _SyntaxError(f"{char!r} at position {index} closes nothing open")
            expected.pop()
            if not expected:
                return index
        index += 1
    raise _SyntaxError(f"missing {expected[-1]!r} for the {text[start]!r} at position {start}")


def _query(inner: str, everything: bool) -> _Query:
    """The query inside ``#(...)``: ``path``, an operator and a value, or only a path."""
    index = 0
    while index < len(inner):
        char = inner[index]
        if char == "\\":
            index += 2
            continue
        if char == '"' or char in _OPENERS:
            index = _closing(inner, index) + 1
            continue
        if char in _OPERATOR_CHARS:
            two = inner[index : index + 2]
            if two in ("==", "!=", "<=", ">=", "!%"):
                op = two
            elif char == "!":  # a lone "!" is part of the path, as in GJSON
                index += 1
                continue
            else:
                op = char
            left = inner[:index].strip()
            value = inner[index + len(op) :].strip()
            return _Query(_sub_path(left), "=" if op == "==" else op, _right_value(value), everything)
        index += 1
    left = inner.strip()
    if not left:
        raise _SyntaxError("empty query '#()'")
    return _Query(_sub_path(left), "", "", everything)


def _sub_path(text: str) -> tuple[_Step, ...]:
    if not text:
        return ()
    return _Parser(text).path(stops="")


def _right_value(text: str) -> str:
    """The compared value: a quoted string unescaped, anything else as written."""
    if text.startswith("~"):
        return "~" + _right_value(text[1:])
    if text.startswith('"'):
        if _closing(text, 0) != len(text) - 1:
            raise _SyntaxError(f"unexpected characters after the string {text!r}")
        return _json_string(text)
    return text


def _json_string(text: str) -> str:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise _SyntaxError(f"{text} is not a valid JSON string") from None
    if not isinstance(value, str):
        raise _SyntaxError(f"{text} is not a string")
    return value


# ---- evaluation ---------------------------------------------------------------------------------
def _walk(value: Any, steps: Sequence[_Step], start: int) -> Result:
    current = value
    index = start
    while index < len(steps):
        segment = steps[index].segment
        maps_rest = index + 1 < len(steps) and not steps[index + 1].piped
        if isinstance(segment, _Count):
            if not isinstance(current, list):
                return MISSING
            if maps_rest:
                return Result(_map(current, steps, index + 1), True)
            current = len(current)
        elif isinstance(segment, _Query):
            if not isinstance(current, list):
                return MISSING
            if segment.all:
                found = [item for item in current if _query_matches(segment, item)]
                if maps_rest:
                    return Result(_map(found, steps, index + 1), True)
                current = found
            else:
                first = next((item for item in current if _query_matches(segment, item)), _ABSENT)
                if first is _ABSENT:
                    return MISSING
                current = first
        elif isinstance(segment, _Key):
            found_value = _lookup(current, segment)
            if found_value is _ABSENT:
                return MISSING
            current = found_value
        elif isinstance(segment, _Modifier):
            result = _MODIFIERS[segment.name](current)
            if not result.exists:
                return MISSING
            current = result.value
        elif isinstance(segment, _Multi):
            current = _multi(current, segment)
        else:
            current = segment.value
        index += 1
    return Result(current, True)


class _Absent:
    """Marks a value that is not there (None is JSON null, which exists)."""


_ABSENT: Any = _Absent()


def _map(items: Sequence[Any], steps: Sequence[_Step], start: int) -> list[Any]:
    out: list[Any] = []
    for item in items:
        result = _walk(item, steps, start)
        if result.exists:
            out.append(result.value)
    return out


def _lookup(value: Any, key: _Key) -> Any:
    if isinstance(value, dict):
        if key.pattern is None:
            return value.get(key.name, _ABSENT)
        for name, item in value.items():
            if key.pattern.fullmatch(name):
                return item
        return _ABSENT
    if isinstance(value, list) and key.pattern is None and key.name.isdigit():
        position = int(key.name)
        return value[position] if position < len(value) else _ABSENT
    return _ABSENT


def _multi(value: Any, segment: _Multi) -> Any:
    if not segment.as_object:
        return [r.value for _, steps in segment.items if (r := _walk(value, steps, 0)).exists]
    out: dict[str, Any] = {}
    for key, steps in segment.items:
        result = _walk(value, steps, 0)
        if result.exists:
            out[key if key is not None else _name_of(steps)] = result.value
    return out


def _name_of(steps: tuple[_Step, ...]) -> str:
    """The key a multipath object gives a path without one: its last plain key, else ``_``."""
    last = steps[-1].segment
    return last.name if isinstance(last, _Key) and last.pattern is None else "_"


def _query_matches(query: _Query, item: Any) -> bool:
    found = _walk(item, query.path, 0) if query.path else Result(item, True)
    expected = query.value
    if expected.startswith("~"):
        expected = expected[1:]
        if expected in ("*", "null"):
            # "~*": the value exists; "~null": it is missing or null. Only == and != apply.
            hit = found.exists if expected == "*" else not found.exists or found.value is None
            return {"=": hit, "!=": not hit}.get(query.op, False)
        found = Result(_truthy(found), True)
    if not found.exists:
        return False
    if not query.op:
        return True
    return _compare(found.value, query.op, expected)


def _truthy(result: Result) -> bool:
    """GJSON's ``Result.Bool()``: true, a non-zero number, or a string that parses as true."""
    value = result.value
    if not result.exists:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.lower() in ("1", "t", "true")
    return False


def _compare(value: Any, op: str, expected: str) -> bool:
    if isinstance(value, bool):
        if value:
            return {
                "=": expected == "true",
                "!=": expected != "true",
                ">": expected == "false",
                ">=": True,
            }.get(op, False)
        return {"=": expected == "false", "!=": expected != "false", "<": expected == "true", "<=": True}.get(
            op, False
        )
    if isinstance(value, str):
        if op == "%":
            return _like(value, expected)
        if op == "!%":
            return not _like(value, expected)
        return _ordered(value, op, expected)
    if isinstance(value, int | float):
        return _ordered(float(value), op, _number(expected))
    return False  # null, objects and arrays match no operator


def _ordered(left: Any, op: str, right: Any) -> bool:
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    return False


def _number(text: str) -> float:
    """Go's ``strconv.ParseFloat`` as GJSON uses it: what does not parse reads as 0."""
    try:
        return float(text)
    except ValueError:
        return 0.0


@lru_cache(maxsize=256)
def _like_pattern(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            parts.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
        index += 1
    return re.compile("".join(parts), re.DOTALL)


def _like(value: str, pattern: str) -> bool:
    return _like_pattern(pattern).fullmatch(value) is not None


# ---- modifiers ----------------------------------------------------------------------------------
def _this(value: Any) -> Result:
    return Result(value, True)


def _reverse(value: Any) -> Result:
    if isinstance(value, list):
        return Result(value[::-1], True)
    if isinstance(value, dict):
        return Result(dict(reversed(value.items())), True)
    return Result(value, True)


def _flatten(value: Any) -> Result:
    if not isinstance(value, list):
        return Result(value, True)
    out: list[Any] = []
    for item in value:
        if isinstance(item, list):
            out.extend(item)
        else:
            out.append(item)
    return Result(out, True)


def _keys(value: Any) -> Result:
    return Result(list(value) if isinstance(value, dict) else [], True)


def _values(value: Any) -> Result:
    return Result(list(value.values()) if isinstance(value, dict) else [], True)


def _join(value: Any) -> Result:
    if not isinstance(value, list):
        return Result(value, True)
    out: dict[str, Any] = {}
    for item in value:
        if isinstance(item, dict):
            out.update(item)
    return Result(out, True)


_MODIFIERS: dict[str, Callable[[Any], Result]] = {
    "this": _this,
    "reverse": _reverse,
    "flatten": _flatten,
    "keys": _keys,
    "values": _values,
    "join": _join,
    "valid": _this,  # a parsed document is valid JSON already
    "ugly": _this,
    "pretty": _this,
}
