"""KServe's validation of an InferenceGraph, on the domain types.

Rules: a ``root`` node exists; every node has a known routerType and at least one step; each
step targets exactly one of serviceName (a valid model name), serviceUrl (http or https) or
nodeName (an existing node), and nodes do not call each other in a cycle; Splitter steps carry
weights > 0 summing to 100 (and only Splitter steps carry weights); Switch steps carry a
condition; ``data`` is ``$request`` or ``$response``; dependency is Soft or Hard; an Ensemble's
step names (the service or node name when empty) are unique since its answer is keyed by them.

Each failure is an ``InvalidError`` whose ``field`` is the manifest path
(``spec.nodes.root.steps[0].weight``).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlparse

from modelplane.libs.errors import InvalidError
from modelplane.libs.resources.cycles import find_cycle
from modelplane.libs.resources.types import (
    GRAPH_DEPENDENCIES,
    GRAPH_ROOT_NODE,
    GRAPH_ROUTER_TYPES,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    GraphNode,
    GraphStep,
    InferenceGraphSpec,
)

# What a step's ``data`` may say; empty means $request.
GRAPH_DATA: tuple[str, ...] = ("", "$request", "$response")
SPLITTER_TOTAL = 100


def validate_graph(name: str, spec: InferenceGraphSpec) -> None:
    """Raise ``InvalidError`` (naming the field) at the first rule ``spec`` breaks."""
    if GRAPH_ROOT_NODE not in spec.nodes:
        found = ", ".join(spec.nodes) or "none"
        raise InvalidError(
            f"inference graph {name} needs a node named {GRAPH_ROOT_NODE!r} (nodes: {found})",
            field="spec.nodes",
        )
    if spec.timeout_seconds < 0:
        raise InvalidError(f"must be >= 0 seconds, got {spec.timeout_seconds:g}", field="spec.timeout")
    for node_name, node in spec.nodes.items():
        _check_node(spec.nodes, node_name, node, f"spec.nodes.{node_name}")
    cycle = find_cycle(_node_calls(spec.nodes))
    if cycle:
        raise InvalidError(f"the nodes call each other in a cycle {' -> '.join(cycle)}", field="spec.nodes")


def _check_node(nodes: Mapping[str, GraphNode], node_name: str, node: GraphNode, where: str) -> None:
    if not node_name.strip():
        raise InvalidError("a node name must not be empty", field="spec.nodes")
    if node.router_type not in GRAPH_ROUTER_TYPES:
        raise InvalidError(
            f"must be one of {', '.join(GRAPH_ROUTER_TYPES)}, got {node.router_type!r}",
            field=f"{where}.routerType",
        )
    if not node.steps:
        raise InvalidError(f"node {node_name} needs at least one step", field=f"{where}.steps")
    for index, step in enumerate(node.steps):
        _check_step(nodes, node, step, f"{where}.steps[{index}]")
    if node.router_type == "Splitter":
        total = sum(step.weight for step in node.steps)
        if total != SPLITTER_TOTAL:
            raise InvalidError(
                f"the weights of Splitter node {node_name} sum to {total}; they must sum to {SPLITTER_TOTAL}",
                field=f"{where}.steps",
            )
    if node.router_type == "Ensemble":
        seen: dict[str, int] = {}
        for index, step in enumerate(node.steps):
            key = step.name or step.target()
            if key in seen:
                raise InvalidError(
                    f"Ensemble node {node_name} has two steps named {key!r} (also steps[{seen[key]}]); "
                    "its answer is keyed by step name, so give each a distinct name",
                    field=f"{where}.steps[{index}].name",
                )
            seen[key] = index


def _check_step(nodes: Mapping[str, GraphNode], node: GraphNode, step: GraphStep, where: str) -> None:
    targets = [
        label
        for label, value in (
            ("serviceName", step.service_name),
            ("serviceUrl", step.service_url),
            ("nodeName", step.node_name),
        )
        if value
    ]
    if len(targets) != 1:
        given = ", ".join(targets) if targets else "none"
        raise InvalidError(
            f"a step needs exactly one of serviceName, serviceUrl or nodeName (given: {given})", field=where
        )
    if step.service_name and (
        len(step.service_name) > NAME_MAX_LENGTH or not NAME_PATTERN.match(step.service_name)
    ):
        raise InvalidError(
            f"{step.service_name!r} is not a valid model name: use lower-case letters, digits and '-'",
            field=f"{where}.serviceName",
        )
    if step.service_url:
        url = urlparse(step.service_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise InvalidError(
                f"must be an http:// or https:// URL, got {step.service_url!r}", field=f"{where}.serviceUrl"
            )
    if step.node_name and step.node_name not in nodes:
        raise InvalidError(
            f"names node {step.node_name!r}, which is not a node of the graph (nodes: {', '.join(nodes)})",
            field=f"{where}.nodeName",
        )
    if node.router_type == "Splitter":
        if step.weight <= 0:
            raise InvalidError(
                f"a Splitter step needs a weight > 0, got {step.weight}", field=f"{where}.weight"
            )
    elif step.weight:
        raise InvalidError(
            f"only Splitter steps take a weight; this node is a {node.router_type}", field=f"{where}.weight"
        )
    if node.router_type == "Switch" and not step.condition.strip():
        raise InvalidError("a Switch step needs a condition (a GJSON-style path)", field=f"{where}.condition")
    if step.data not in GRAPH_DATA:
        raise InvalidError(f"must be $request or $response, got {step.data!r}", field=f"{where}.data")
    if step.dependency not in GRAPH_DEPENDENCIES:
        raise InvalidError(
            f"must be one of {', '.join(GRAPH_DEPENDENCIES)}, got {step.dependency!r}",
            field=f"{where}.dependency",
        )


def _node_calls(nodes: Mapping[str, GraphNode]) -> dict[str, list[str]]:
    """Which nodes each node calls (its nodeName steps naming an existing node)."""
    return {name: [s.node_name for s in node.steps if s.node_name in nodes] for name, node in nodes.items()}
