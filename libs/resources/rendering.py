"""Domain resources -> the native manifests users read (what ``modelplane convert`` and
``get -o yaml`` print, and half of ``kinds.validate``'s round trip; ``manifests.parse_manifest``
is the other half and re-exports ``to_manifest``).

Empty fields are left out (``replicas`` always stays: 0 means scaled to zero). A resource of a
namespace other than ``default`` is rendered with the names its user wrote
(``namespacing.out_of_namespace``) and its ``metadata.namespace``.
"""

from __future__ import annotations

from typing import Any

from modelplane.libs.resources.flow_manifests import graph_step_manifest, pipeline_manifest
from modelplane.libs.resources.namespacing import is_default, out_of_namespace
from modelplane.libs.resources.quantity import format_bytes
from modelplane.libs.resources.types import (
    Autoscaling,
    Experiment,
    InferenceGraph,
    LoadBalancing,
    Model,
    Pipeline,
    PrefixHashOptions,
    Resource,
    Server,
)

NATIVE_API = "modelplane.io/v1alpha1"


def _drop_empty(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if v not in (None, "", [], {}, 0) or k == "replicas"}


def _autoscaling_manifest(autoscaling: Autoscaling | None) -> dict[str, Any] | None:
    if autoscaling is None:
        return None
    return {
        "targetRequests": autoscaling.target_requests,
        "scaleDownDelaySeconds": autoscaling.scale_down_delay_seconds,
        "scaleMetric": autoscaling.metric,
        "disabled": autoscaling.disabled,
    }


def _load_balancing_manifest(balancing: LoadBalancing) -> dict[str, Any] | None:
    """KubeAI's form; None (dropped) when everything is the default."""
    if balancing == LoadBalancing():
        return None
    out: dict[str, Any] = {"strategy": balancing.strategy}
    if balancing.prefix_hash != PrefixHashOptions():
        options = balancing.prefix_hash
        out["prefixHash"] = {
            "meanLoadFactor": options.mean_load_factor_percent,
            "replication": options.replication,
            "prefixCharLength": options.prefix_char_length,
        }
    return out


def to_manifest(resource: Resource) -> dict[str, Any]:
    """The native manifest of a resource (what ``modelplane convert`` and ``get -o yaml`` print)."""
    meta: dict[str, Any] = {"name": resource.meta.name}
    if resource.meta.labels:
        meta["labels"] = dict(resource.meta.labels)
    if resource.meta.annotations:
        meta["annotations"] = dict(resource.meta.annotations)
    if resource.meta.generation:
        meta["generation"] = resource.meta.generation
    spec: dict[str, Any]
    if isinstance(resource, Model):
        m = resource.spec
        spec = {
            "storageUri": m.storage_uri,
            "artifactVersion": m.artifact_version,
            "requirements": list(m.requirements),
            "memory": format_bytes(m.memory_bytes) if m.memory_bytes else None,
            "replicas": m.replicas,
            "minReplicas": m.min_replicas,
            "maxReplicas": m.max_replicas,
            "server": m.server,
            "parameters": [{"name": k, "value": v} for k, v in sorted(m.parameters.items())],
            "secretName": m.secret_name,
            "explainer": {"modelRef": m.explainer_for} if m.explainer_for else None,
            "parallelWorkers": m.parallel_workers,
            "loadBalancing": _load_balancing_manifest(m.load_balancing),
            "timeoutSeconds": m.timeout_seconds or None,
            "autoscaling": _autoscaling_manifest(m.autoscaling),
        }
    elif isinstance(resource, Server):
        s = resource.spec
        spec = {
            "serverConfig": s.server_config,
            "capabilities": list(s.capabilities),
            "extraCapabilities": list(s.extra_capabilities),
            "replicas": s.replicas,
            "minReplicas": s.min_replicas,
            "maxReplicas": s.max_replicas,
            "disableAutoUpdate": s.disable_auto_update or None,
            "memory": format_bytes(s.memory_bytes) if s.memory_bytes else None,
            "env": dict(s.env),
        }
    elif isinstance(resource, Experiment):
        e = resource.spec
        spec = {
            "default": e.default,
            "candidates": [{"name": c.name, "weight": c.weight} for c in e.candidates],
            "mirror": (
                {"name": e.mirror.name, "percent": e.mirror.percent} if e.mirror is not None else None
            ),
            # Always written: a reader sees what the names refer to.
            "resourceType": e.resource_type,
        }
    elif isinstance(resource, Pipeline):
        spec = pipeline_manifest(resource.spec)
    elif isinstance(resource, InferenceGraph):
        spec = {
            "nodes": {
                name: {"routerType": node.router_type, "steps": [graph_step_manifest(s) for s in node.steps]}
                for name, node in resource.spec.nodes.items()
            },
            "timeout": resource.spec.timeout_seconds or None,
        }
    else:
        c = resource.spec
        spec = {
            "runtime": c.runtime,
            "capabilities": list(c.capabilities),
            "memory": format_bytes(c.memory_bytes) if c.memory_bytes else None,
            "overcommitPercent": c.overcommit_percent,
            "env": dict(c.env),
            "args": list(c.args),
            "command": list(c.command),
            "parallelWorkers": c.parallel_workers,
        }
    rendered: dict[str, Any] = {
        "apiVersion": NATIVE_API,
        "kind": resource.kind,
        "metadata": meta,
        "spec": _drop_empty(spec),
    }
    namespace = resource.meta.namespace
    if is_default(namespace):
        return rendered
    # The names its user wrote (namespacing.py); parse_manifest renames them again.
    rendered = out_of_namespace(rendered, namespace)
    rendered["metadata"]["namespace"] = namespace
    return rendered
