"""Reading manifests from ``-f`` arguments: files, directories and stdin.

A Model's relative local ``storageUri`` is made absolute against the manifest's folder. Only
syntax is checked here (so a YAML typo is reported with its file and line, exit 2); the
api validates the content, in one place for every client.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelplane.cli.client import InvalidInput
from modelplane.libs.resources.local_uris import resolve_relative_storage, resolve_relative_uris

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
FILES_HELP = "A manifest file, a directory of *.yaml/*.yml/*.json, or - for stdin (repeatable)."


@dataclass(frozen=True, slots=True)
class Document:
    """One manifest and where it came from (for error messages)."""

    source: str
    index: int
    body: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.source} (document {self.index + 1})" if self.index else self.source

    @property
    def kind(self) -> str:
        return str(self.body.get("kind") or "")

    @property
    def name(self) -> str:
        metadata = self.body.get("metadata")
        return str(metadata.get("name") or "") if isinstance(metadata, dict) else ""


def _files(argument: str) -> list[Path]:
    path = Path(argument)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
        if not found:
            raise InvalidInput(f"{argument}: no *.yaml, *.yml or *.json files in this directory")
        return found
    if not path.exists():
        raise InvalidInput(f"{argument}: no such file or directory")
    return [path]


def _parse(text: str, source: str, is_json: bool) -> list[Any]:
    if is_json:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
        return parsed if isinstance(parsed, list) else [parsed]
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput(f"{source}: invalid YAML{where}: {problem}") from None


def read_documents(arguments: Iterable[str]) -> list[Document]:
    """Every manifest named by ``-f`` arguments, in order; exit 2 on unreadable or malformed input."""
    docs: list[Document] = []
    for argument in arguments:
        if argument == "-":
            sources = [("(stdin)", sys.stdin.read(), False, Path.cwd())]
        else:
            sources = []
            for path in _files(argument):
                try:
                    text = path.read_text()
                except (OSError, UnicodeDecodeError) as exc:
                    raise InvalidInput(f"{path}: cannot read: {exc}") from None
                sources.append((str(path), text, path.suffix == ".json", path.resolve().parent))
        for source, text, is_json, folder in sources:
            for index, body in enumerate(_parse(text, source, is_json)):
                if not isinstance(body, dict):
                    raise InvalidInput(f"{source}: a manifest must be a mapping, got {type(body).__name__}")
                # A relative local storageUri means "next to this manifest", wherever `up` runs.
                body = resolve_relative_uris(resolve_relative_storage(body, str(folder)), str(folder))
                docs.append(Document(source, index, body))
    if not docs:
        raise InvalidInput("no manifests found in the given files")
    return docs


def resource_ref(kind: str, name: str) -> str:
    """How the CLI names a resource in its output, e.g. ``model/iris``."""
    return f"{kind.lower()}/{name}"
