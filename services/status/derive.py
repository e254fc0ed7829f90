"""Pure derivation of a Model's and a Server's status (the rules of libs.states).

``last_change`` moves only when the state changes: callers pass the previous status and the
current time, and get the previous time back when the state is the same.

A model's status also carries the artifact download of each placed version (the storage
service's last report). A report can be stale: the storage service's last event may be lost,
so a version some replica already holds shows ``done`` rather than ``downloading``; a failed
download takes the reason the agent reported for the failed load.

An autoscaled model's status also carries the autoscaler's last decision (its KV_AUTOSCALER
record), only while the model's spec asks for autoscaling: a record left behind after
autoscaling was removed from the spec, or of a deleted model, is not shown. The decision is not
a state: it never moves ``last_change``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from modelplane.libs import states
from modelplane.services.status.types import (
    PHASE_DONE,
    PHASE_DOWNLOADING,
    PHASE_FAILED,
    AutoscalingView,
    DownloadView,
    ModelView,
    PlacementView,
    ReplicaStatus,
    ReplicaUsageView,
    ReplicaView,
    ScaleRequestView,
    ServerView,
    Status,
)

SERVER_READY = "ServerReady"
SERVER_NOT_READY = "ServerNotReady"
WAITING_FOR_SCHEDULER = "waiting for the scheduler"


def _stamp(status: Status, previous: Status | None, now: str) -> Status:
    if previous is not None and previous.state == status.state and previous.last_change:
        return replace(status, last_change=previous.last_change)
    return replace(status, last_change=now)


def version_downloads(
    placement: PlacementView, downloads: Mapping[int, DownloadView] | None
) -> tuple[DownloadView, ...]:
    """The download of each placed version that has one, by version, corrected by its replicas."""
    out = []
    for version in sorted(placement.versions, key=lambda v: v.version):
        download = (downloads or {}).get(version.version)
        if download is None:
            continue
        held = any(a.state in states.CAN_RECEIVE_TRAFFIC for a in version.replicas)
        if download.phase == PHASE_DOWNLOADING and held:
            download = replace(download, phase=PHASE_DONE, bytes_per_second=0.0)
        elif download.phase == PHASE_FAILED and not download.reason:
            failed = [a.reason for a in version.replicas if a.state == states.LOAD_FAILED and a.reason]
            if failed:
                download = replace(download, reason=failed[0])
        out.append(download)
    return tuple(out)


def model_status(
    name: str,
    model: ModelView | None,
    placement: PlacementView | None,
    previous: Status | None,
    now: str,
    downloads: Mapping[int, DownloadView] | None = None,
    autoscaling: AutoscalingView | None = None,
) -> Status | None:
    """The Model's status, or None when the status key should be deleted.

    ``downloads`` are the storage service's last reports for this model, by version;
    ``autoscaling`` is the autoscaler's record of it, if any.
    """
    if model is None:
        if placement is None:
            return None
        all_states = [a.state for v in placement.versions for a in v.replicas]
        status = Status(
            kind="Model",
            name=name,
            state=states.derive_terminating_state(all_states),
            reason="model deleted; unloading its replicas",
            version=placement.versions[-1].version if placement.versions else 0,
            generation=previous.generation if previous else 0,
        )
        return _stamp(status, previous, now)
    scaling = autoscaling if model.autoscaled else None
    if placement is None or not placement.versions:
        status = Status(
            kind="Model",
            name=name,
            state=states.MODEL_PROGRESSING,
            reason=WAITING_FOR_SCHEDULER,
            total_replicas=model.replicas,
            unavailable_replicas=model.replicas,
            generation=model.generation,
            autoscaling=scaling,
        )
        return _stamp(status, previous, now)
    latest = max(placement.versions, key=lambda v: v.version)
    latest_states = [a.state for a in latest.replicas]
    earlier = any(
        states.count_available(a.state for a in v.replicas) > 0
        for v in placement.versions
        if v.version < latest.version
    )
    state = states.derive_model_state(
        latest_states,
        replicas=model.replicas,
        min_replicas=model.min_replicas,
        earlier_version_available=earlier,
        schedule_failed=latest.schedule_failed,
    )
    available = states.count_available(latest_states)
    reason = latest.reason
    if not reason:
        failed = [a.reason for a in latest.replicas if a.state == states.LOAD_FAILED and a.reason]
        if failed:
            reason = failed[0]
        elif state == states.MODEL_PROGRESSING:
            reason = f"{available} of {model.replicas} replicas available"
    status = Status(
        kind="Model",
        name=name,
        state=state,
        reason=reason,
        available_replicas=available,
        total_replicas=model.replicas,
        unavailable_replicas=max(0, model.replicas - available),
        version=latest.version,
        generation=model.generation,
        replicas=tuple(
            ReplicaStatus(a.server, a.index, states.replica_state_name(a.state), a.reason, a.updated_at)
            for a in sorted(latest.replicas, key=lambda a: (a.server, a.index))
        ),
        downloads=version_downloads(placement, downloads),
        observed_generation=placement.generation,
        autoscaling=scaling,
    )
    return _stamp(status, previous, now)


def server_status(
    server: ServerView | None,
    replicas: list[ReplicaView],
    previous: Status | None,
    now: str,
    usage: Mapping[int, ReplicaUsageView] | None = None,
    scale_request: ScaleRequestView | None = None,
) -> Status | None:
    """The Server's status, or None when the status key should be deleted.

    ``usage`` (the scheduler's ServerState, by replica index) adds each replica's booked memory,
    models and draining flag; ``scale_request`` is the scheduler's pending request, if any.
    """
    usage = usage or {}
    if server is None:
        return None
    ordered = sorted(replicas, key=lambda r: r.index)
    available = sum(1 for r in ordered if not r.unavailable_reason)
    ready = available >= server.replicas
    reason = ""
    if not ready:
        unavailable = [r.unavailable_reason for r in ordered if r.unavailable_reason]
        reason = unavailable[0] if unavailable else f"{available} of {server.replicas} replicas registered"
    status = Status(
        kind="Server",
        name=server.name,
        state=SERVER_READY if ready else SERVER_NOT_READY,
        reason=reason,
        available_replicas=available,
        total_replicas=server.replicas,
        unavailable_replicas=max(0, server.replicas - available),
        generation=server.generation,
        replicas=tuple(
            ReplicaStatus(
                r.server,
                r.index,
                "Unavailable" if r.unavailable_reason else "Ready",
                r.unavailable_reason,
                r.registered_at,
                usage.get(r.index, ReplicaUsageView(r.index)),
            )
            for r in ordered
        ),
        scale_request=scale_request.describe() if scale_request is not None else "",
    )
    return _stamp(status, previous, now)
