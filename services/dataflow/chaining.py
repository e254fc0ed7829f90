"""Pipelines chained from other pipelines (Seldon's ``input.externalInputs`` / ``externalTriggers``).

Design: a chained pipeline ``q`` with ``input.externalInputs: [p.outputs]`` gets one request for
every answer of ``p``; ``p.step.s.outputs`` / ``p.inputs`` / ``p.step.s.inputs`` likewise for the
step's calls and the pipeline's requests. The worker that runs ``p``'s request publishes ``q``'s
request (same request id, JetStream de-duplicated by message id), so a chained request is as
durable as any other and runs on whichever worker takes it.

One event (an answer, a step call, a request) feeds one chained request: the references of
``q`` that this event covers are gathered, renamed by ``q``'s ``input.tensorMap``, and sent if
``q``'s join over them holds (inner: each covered reference has a tensor; any/outer: one has).
References of ``q`` pointing at other events are not waited for: a join across several
upstream pipelines is not supported (the first event to arrive starts ``q``'s request, and the
message id stops a second one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelplane.libs.resources.pipeline_refs import BadReference, TensorRef, parse_external_reference
from modelplane.libs.resources.types import Pipeline

# (source pipeline, source step ("" = the pipeline itself), port)
EventKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class ChainLink:
    """What one chained pipeline takes from one kind of upstream event."""

    target: str
    inputs: tuple[TensorRef, ...]
    triggers: tuple[TensorRef, ...]
    join_type: str
    triggers_join_type: str
    # canonical external reference of a tensor -> the name the chained pipeline receives
    tensor_map: dict[str, str] = field(default_factory=dict)


def _parsed(refs: Iterable[str]) -> list[TensorRef]:
    out = []
    for text in refs:
        try:
            out.append(parse_external_reference(text))
        except BadReference:
            continue  # the api refuses such a pipeline; an old record must not stop the others
    return out


def links_of(pipeline: Pipeline) -> dict[EventKey, ChainLink]:
    """The upstream events ``pipeline`` is chained to, each with the references it takes."""
    spec = pipeline.spec.input
    if spec is None:
        return {}
    inputs = _parsed(spec.external_inputs)
    triggers = _parsed(spec.external_triggers)
    tensor_map: dict[str, str] = {}
    for key, name in spec.tensor_map.items():
        try:
            tensor_map[parse_external_reference(key).text()] = name
        except BadReference:
            continue
    keys = dict.fromkeys((ref.pipeline, ref.step, ref.port) for ref in (*inputs, *triggers))
    return {
        key: ChainLink(
            target=pipeline.meta.name,
            inputs=tuple(r for r in inputs if (r.pipeline, r.step, r.port) == key),
            triggers=tuple(r for r in triggers if (r.pipeline, r.step, r.port) == key),
            join_type=spec.join_type,
            triggers_join_type=spec.triggers_join_type,
            tensor_map=tensor_map,
        )
        for key in keys
    }


def _non_empty(tensor: Mapping[str, Any]) -> bool:
    shape = tensor.get("shape") or []
    return bool(tensor.get("data")) and all(int(d) != 0 for d in shape)


def _covered(ref: TensorRef, tensors: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [t for t in tensors if ref.covers(str(t.get("name", ""))) and _non_empty(t)]


def _joined(refs: tuple[TensorRef, ...], join_type: str, tensors: list[Mapping[str, Any]]) -> bool:
    if not refs:
        return True
    hits = [bool(_covered(ref, tensors)) for ref in refs]
    return all(hits) if join_type == "inner" else any(hits)


def chained_request(
    link: ChainLink, tensors: list[Mapping[str, Any]], parameters: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The chained pipeline's request made of one upstream event's ``tensors``, or None when
    its joins over this event do not hold."""
    if not link.inputs or not _joined(link.inputs, link.join_type, tensors):
        return None
    if not _joined(link.triggers, link.triggers_join_type, tensors):
        return None
    sent: dict[str, dict[str, Any]] = {}
    for ref in link.inputs:
        for tensor in _covered(ref, tensors):
            name = str(tensor["name"])
            full = TensorRef(ref.pipeline, ref.step, ref.port, name).text()
            renamed = dict(tensor)
            renamed["name"] = link.tensor_map.get(full, name)
            sent[renamed["name"]] = renamed
    request: dict[str, Any] = {"inputs": list(sent.values())}
    if parameters:
        request["parameters"] = dict(parameters)
    return request


class ChainIndex:
    """Which chained pipelines listen to which upstream events; rebuilt when pipelines change."""

    def __init__(self) -> None:
        self._links: dict[str, dict[EventKey, ChainLink]] = {}
        self._by_event: dict[EventKey, list[ChainLink]] = {}

    def set(self, pipeline: Pipeline) -> None:
        self._links[pipeline.meta.name] = links_of(pipeline)
        self._rebuild()

    def remove(self, name: str) -> None:
        if self._links.pop(name, None) is not None:
            self._rebuild()

    def _rebuild(self) -> None:
        by_event: dict[EventKey, list[ChainLink]] = {}
        for links in self._links.values():
            for key, link in links.items():
                by_event.setdefault(key, []).append(link)
        self._by_event = by_event

    def listeners(self, pipeline: str, step: str, port: str) -> list[ChainLink]:
        return self._by_event.get((pipeline, step, port), [])

    def any_on(self, pipeline: str) -> bool:
        """Whether some chained pipeline listens to any event of ``pipeline``."""
        return any(key[0] == pipeline for key in self._by_event)
