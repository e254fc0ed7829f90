"""The join rules of a chained pipeline listening to several upstream events (pure functions)."""

from __future__ import annotations

from typing import Any

from modelplane.libs.resources.manifests import parse_manifest
from modelplane.libs.resources.types import Pipeline
from modelplane.services.dataflow.chaining import (
    ChainLink,
    contribution,
    joined_across,
    links_of,
    source_name,
)


def chained(
    join_type: str = "inner", triggers: list[str] | None = None, triggers_join: str = "inner"
) -> dict[tuple[str, str, str], ChainLink]:
    spec: dict[str, Any] = {
        "steps": [{"name": "add"}],
        "input": {
            "externalInputs": ["p1.outputs.OUTPUT0", "p2.step.s.outputs"],
            "joinType": join_type,
            "tensorMap": {"p1.outputs.OUTPUT0": "INPUT0"},
        },
    }
    if triggers:
        spec["input"]["externalTriggers"] = triggers
        spec["input"]["triggersJoinType"] = triggers_join
    pipeline = parse_manifest(
        {
            "apiVersion": "mlops.seldon.io/v1alpha1",
            "kind": "Pipeline",
            "metadata": {"name": "q"},
            "spec": spec,
        }
    )
    assert isinstance(pipeline, Pipeline)
    return links_of(pipeline)


def tensor(name: str, value: float = 1.0) -> dict[str, Any]:
    return {"name": name, "datatype": "FP32", "shape": [1], "data": [value]}


P1 = ("p1", "", "outputs")
P2 = ("p2", "s", "outputs")


def shares(links: dict[tuple[str, str, str], ChainLink], **events: list[dict[str, Any]]) -> dict[str, Any]:
    keys = {"p1": P1, "p2": P2, "p3": ("p3", "", "outputs")}
    return {source_name(keys[k]): contribution(links[keys[k]], v) for k, v in events.items()}


def test_links_know_every_source() -> None:
    """Each event kind's link names all the sources of the join, so any of them can decide."""
    links = chained()
    assert set(links) == {P1, P2}
    assert all(link.joined_across_events for link in links.values())
    assert links[P1].input_sources == (P1, P2)


def test_inner_waits_for_every_source() -> None:
    """inner: one source is not enough; both give one request, renamed by the tensorMap."""
    links = chained("inner")
    one = shares(links, p1=[tensor("OUTPUT0", 2.0)])
    assert joined_across(links[P1], one, None, final=True) is None
    both = shares(links, p1=[tensor("OUTPUT0", 2.0)], p2=[tensor("X", 3.0)])
    request = joined_across(links[P2], both, {"k": "v"}, final=False)
    assert request == {"inputs": [tensor("INPUT0", 2.0), tensor("X", 3.0)], "parameters": {"k": "v"}}


def test_any_takes_the_first_and_outer_waits_for_the_window() -> None:
    """any: the first source starts the request; outer: only once the window passed (final)."""
    first = shares(chained("any"), p2=[tensor("X")])
    assert joined_across(chained("any")[P2], first, None, final=False) is not None
    outer = chained("outer")
    partial = shares(outer, p2=[tensor("X")])
    assert joined_across(outer[P2], partial, None, final=False) is None
    assert joined_across(outer[P2], partial, None, final=True) == {"inputs": [tensor("X")]}


def test_empty_tensors_do_not_count_and_triggers_gate() -> None:
    """An empty tensor brings nothing; an external trigger source must fire for inner triggers."""
    links = chained("inner", triggers=["p3.outputs.GO"])
    empty = {"name": "OUTPUT0", "datatype": "FP32", "shape": [0], "data": []}
    without = shares(links, p1=[empty], p2=[tensor("X")])
    assert joined_across(links[P1], without, None, final=True) is None
    not_fired = shares(links, p1=[tensor("OUTPUT0")], p2=[tensor("X")], p3=[tensor("OTHER")])
    assert joined_across(links[P1], not_fired, None, final=True) is None
    fired = shares(links, p1=[tensor("OUTPUT0")], p2=[tensor("X")], p3=[tensor("GO")])
    assert joined_across(links[P1], fired, None, final=False) is not None
