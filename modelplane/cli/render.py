"""Rendering api answers for people (tables, summaries) and for tools (-o yaml|json)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.message import Message

from modelplane.libs.resources.quantity import format_bytes
from modelplane.proto import state_pb2

OUTPUT_FORMATS = ("yaml", "json")
_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_size(value: float) -> str:
    """A byte count for people, one decimal from KiB on: ``512 B``, ``45.0 MiB``."""
    size = float(max(0.0, value))
    for unit in _SIZE_UNITS[:-1]:
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} {_SIZE_UNITS[-1]}"


def download_summary(download: state_pb2.DownloadStatus) -> str:
    """One version's download in words: ``downloading 45.0 MiB / 200.0 MiB at 12.3 MiB/s``,
    ``cached``, ``done (200.0 MiB)``, ``failed: <reason>``."""
    phase = download.phase or "unknown"
    if phase == "downloading":
        text = f"downloading {format_size(download.bytes_done)}"
        if download.bytes_total:
            text += f" / {format_size(download.bytes_total)}"
        if download.bytes_per_second > 0:
            text += f" at {format_size(download.bytes_per_second)}/s"
        return text
    if phase == "done":
        return f"done ({format_size(download.bytes_done)})" if download.bytes_done else "done"
    if phase == "failed":
        return f"failed: {download.reason}" if download.reason else "failed"
    return phase


def autoscaling_summary(scaling: state_pb2.ModelScaling) -> str:
    """The autoscaler's last decision in words: ``2 -> 4 replicas (avg concurrency 7.5 / target 2
    -> 4, at 2026-11-24T10:01:02Z)``, or ``2 replicas (...)`` when it keeps the count."""
    if scaling.desired_replicas == scaling.current_replicas:
        text = f"{scaling.current_replicas} replicas"
    else:
        text = f"{scaling.current_replicas} -> {scaling.desired_replicas} replicas"
    details = [d for d in (scaling.reason, f"at {scaling.at}" if scaling.at else "") if d]
    if details:
        text += f" ({', '.join(details)})"
    return text


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns two spaces apart, like kubectl."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def structured(message: Message | dict[str, Any], output: str) -> str:
    data = message if isinstance(message, dict) else json_format.MessageToDict(message)
    if output == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False).rstrip()


def status_summary(status: state_pb2.ResourceStatus) -> str:
    lines = [
        f"{status.kind.lower()}/{status.name}: {status.state or 'Unknown'}",
        f"  available: {status.available_replicas}/{status.total_replicas}",
    ]
    if status.HasField("autoscaling"):
        lines.append(f"  autoscaling: {autoscaling_summary(status.autoscaling)}")
    if status.reason:
        lines.append(f"  reason: {status.reason}")
    if status.version:
        lines.append(f"  version: {status.version}")
    if status.last_change:
        lines.append(f"  last change: {status.last_change}")
    if status.downloads:
        lines.append("  downloads:")
        lines.extend(f"    version {d.version}: {download_summary(d)}" for d in status.downloads)
    if status.replicas:
        lines.append("  replicas:")
        rows = [
            [f"{r.server}.{r.index}", r.state, r.reason or "-", r.updated_at or "-"] for r in status.replicas
        ]
        lines.extend(
            "    " + line for line in table(["REPLICA", "STATE", "REASON", "SINCE"], rows).splitlines()
        )
    return "\n".join(lines)


def replica_summary(replica: state_pb2.ReplicaInfo, booked: state_pb2.ReplicaStatus | None = None) -> str:
    """One server replica: what its agent registered and, when known, what the scheduler booked."""
    draining = replica.draining or (booked is not None and booked.draining)
    if replica.unavailable_reason:
        state = f"Unavailable ({replica.unavailable_reason})"
    elif draining:
        state = "Draining"
    else:
        state = "Ready"
    lines = [
        f"  replica {replica.index}: {state}",
        f"    runtime: {replica.runtime or '-'}",
        f"    endpoints: http={replica.http_endpoint or '-'} grpc={replica.grpc_endpoint or '-'}",
        f"    capabilities: {', '.join(replica.capabilities) or '-'}",
    ]
    if booked is not None and booked.memory_bytes:
        lines.append(
            f"    memory: total {format_bytes(booked.memory_bytes)}, "
            f"available {format_bytes(booked.available_bytes)}, "
            f"reserved {format_bytes(booked.reserved_bytes)}, "
            f"loaded {format_bytes(booked.loaded_bytes)} (overcommit {booked.overcommit_percent}%)"
        )
        lines.append(f"    models: {', '.join(booked.models) or '-'}")
    else:
        lines.append(
            f"    memory: {format_bytes(replica.memory_bytes)} (overcommit {replica.overcommit_percent}%)"
        )
    lines.append(f"    loaded models: {', '.join(replica.loaded_models) or '-'}")
    lines.append(f"    draining: {'yes' if draining else 'no'}")
    return "\n".join(lines)
