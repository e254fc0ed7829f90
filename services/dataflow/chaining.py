"""Pipelines chained from other pipelines (Seldon's ``input.externalInputs`` / ``externalTriggers``).

Design: a chained pipeline ``q`` with ``input.externalInputs: [p.outputs]`` gets one request for
every answer of ``p``; ``p.step.s.outputs`` / ``p.inputs`` / ``p.step.s.inputs`` likewise for the
step's calls and the pipeline's requests. The worker that runs ``p``'s request publishes ``q``'s
request (same request id, JetStream de-duplicated by message id), so a chained request is as
durable as any other and runs on whichever worker takes it.

When all of ``q``'s references point at one kind of event (one upstream pipeline's answers,
say), each such event feeds one chained request: the references it covers are gathered,
renamed by ``q``'s ``input.tensorMap``, and sent if ``q``'s join over them holds (inner: each
reference has a tensor; any/outer: one has). When they point at several (``p1.outputs`` and
``p2.outputs``, joined per request id), each event's share is a ``Contribution`` kept in KV
until ``q``'s join holds (chain_joins.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
    # Every kind of event the target listens to: more than one means a join across them.
    input_sources: tuple[EventKey, ...] = ()
    trigger_sources: tuple[EventKey, ...] = ()
    join_window_ms: int = 0

    @property
    def joined_across_events(self) -> bool:
        return len(set(self.input_sources) | set(self.trigger_sources)) > 1


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
    input_sources = tuple(dict.fromkeys((r.pipeline, r.step, r.port) for r in inputs))
    trigger_sources = tuple(dict.fromkeys((r.pipeline, r.step, r.port) for r in triggers))
    return {
        key: ChainLink(
            target=pipeline.meta.name,
            inputs=tuple(r for r in inputs if (r.pipeline, r.step, r.port) == key),
            triggers=tuple(r for r in triggers if (r.pipeline, r.step, r.port) == key),
            join_type=spec.join_type,
            triggers_join_type=spec.triggers_join_type,
            tensor_map=tensor_map,
            input_sources=input_sources,
            trigger_sources=trigger_sources,
            join_window_ms=spec.join_window_ms,
        )
        for key in keys
    }


def _non_empty(tensor: Mapping[str, Any]) -> bool:
    shape = tensor.get("shape") or []
    return bool(tensor.get("data")) and all(int(d) != 0 for d in shape)


def _covered(ref: TensorRef, tensors: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [t for t in tensors if ref.covers(str(t.get("name", ""))) and _non_empty(t)]


def _joined(refs: tuple[TensorRef, ...], join_type: str, tensors: Sequence[Mapping[str, Any]]) -> bool:
    if not refs:
        return True
    hits = [bool(_covered(ref, tensors)) for ref in refs]
    return all(hits) if join_type == "inner" else any(hits)


def _renamed_inputs(link: ChainLink, tensors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    sent: dict[str, dict[str, Any]] = {}
    for ref in link.inputs:
        for tensor in _covered(ref, tensors):
            name = str(tensor["name"])
            full = TensorRef(ref.pipeline, ref.step, ref.port, name).text()
            renamed = dict(tensor)
            renamed["name"] = link.tensor_map.get(full, name)
            sent[renamed["name"]] = renamed
    return list(sent.values())


def chained_request(
    link: ChainLink, tensors: Sequence[Mapping[str, Any]], parameters: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The chained pipeline's request made of one upstream event's ``tensors``, or None when
    its joins over this event do not hold."""
    if not link.inputs or not _joined(link.inputs, link.join_type, tensors):
        return None
    if not _joined(link.triggers, link.triggers_join_type, tensors):
        return None
    request: dict[str, Any] = {"inputs": _renamed_inputs(link, tensors)}
    if parameters:
        request["parameters"] = dict(parameters)
    return request


def source_name(key: EventKey) -> str:
    """A stable text for an event kind (a key of a ``Contribution`` map)."""
    pipeline, step, port = key
    return f"{pipeline}.step.{step}.{port}" if step else f"{pipeline}.{port}"


def contribution(link: ChainLink, tensors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One event's share of a join across events: the (renamed) input tensors it brings and
    whether its triggers hold (None when it brings no trigger)."""
    return {
        "inputs": _renamed_inputs(link, tensors),
        "triggered": _joined(link.triggers, link.triggers_join_type, tensors) if link.triggers else None,
    }


def joined_across(
    link: ChainLink,
    contributions: Mapping[str, Mapping[str, Any]],
    parameters: Mapping[str, Any] | None,
    *,
    final: bool,
) -> dict[str, Any] | None:
    """The chained request once the join over every source holds, else None.

    inner: every input source brought tensors (and every trigger source fired, for inner
    triggers); any: one did; outer: as inner, or (``final``: the window has passed) one did."""
    has_inputs = [bool(contributions.get(source_name(k), {}).get("inputs")) for k in link.input_sources]
    fired = [bool(contributions.get(source_name(k), {}).get("triggered")) for k in link.trigger_sources]
    if link.join_type == "inner":
        inputs_ok = all(has_inputs)
    elif link.join_type == "any":
        inputs_ok = any(has_inputs)
    else:
        inputs_ok = all(has_inputs) or (final and any(has_inputs))
    if link.triggers_join_type == "inner":
        triggers_ok = all(fired)
    elif link.triggers_join_type == "any":
        triggers_ok = any(fired) or not fired
    else:
        triggers_ok = all(fired) or (final and (any(fired) or not fired))
    if not (inputs_ok and triggers_ok):
        return None
    sent: dict[str, Any] = {}
    for key in link.input_sources:
        for tensor in contributions.get(source_name(key), {}).get("inputs") or ():
            sent[tensor["name"]] = tensor
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
