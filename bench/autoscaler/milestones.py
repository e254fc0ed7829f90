"""How far a model got on its way to N ready replicas, read off the protobuf values in KV.

Each function answers for one value (None = key absent or deleted), so the same functions serve
the scale-up and the cold-start measurements, and the tests.

The path a replica takes, in order: the autoscaler's decision (KV_AUTOSCALER) -> the api writes
``spec.replicas`` (KV_MODELS) -> the scheduler assigns replicas (KV_PLACEMENTS, LoadRequested) -> the agents start loading
(Loading: artifact from the storage cache, copied, loaded into MLServer) -> they report it
loaded (Loaded, then Available) -> the scheduler routes
traffic to it (KV_ROUTES) -> the status service counts it (KV_STATUS ``availableReplicas``).
"""

from __future__ import annotations

from modelplane.proto import events_pb2, resources_pb2, state_pb2

# Assignment states meaning "this replica is meant to serve the model" (being loaded or loaded).
_ASSIGNED = frozenset((state_pb2.LOAD_REQUESTED, state_pb2.LOADING, state_pb2.LOADED, state_pb2.AVAILABLE))
# The agent took the load on (it fetches the artifact, copies it, loads it into MLServer).
_LOADING = frozenset((state_pb2.LOADING, state_pb2.LOADED, state_pb2.AVAILABLE))
_LOADED = frozenset((state_pb2.LOADED, state_pb2.AVAILABLE))
# Anything but these means MLServer may still hold the model (loaded, loading, unloading).
_GONE = frozenset((state_pb2.UNLOADED, state_pb2.REPLICA_STATE_UNKNOWN))


def spec_replicas(model: resources_pb2.Model | None) -> int:
    return model.spec.replicas if model is not None else 0


def desired_replicas(scaling: state_pb2.ModelScaling | None) -> int:
    """The autoscaler's last decision (0 when it has none)."""
    return scaling.desired_replicas if scaling is not None else 0


def _latest_version(placement: state_pb2.ModelPlacement | None) -> state_pb2.ModelVersionPlacement | None:
    if placement is None or not placement.versions:
        return None
    return max(placement.versions, key=lambda v: v.version)


def assigned_replicas(placement: state_pb2.ModelPlacement | None) -> int:
    """Replicas of the latest version the scheduler assigned (loading or loaded)."""
    version = _latest_version(placement)
    return sum(1 for a in version.replicas if a.state in _ASSIGNED) if version is not None else 0


def loading_replicas(placement: state_pb2.ModelPlacement | None) -> int:
    """Replicas of the latest version whose agent started loading (or finished)."""
    version = _latest_version(placement)
    return sum(1 for a in version.replicas if a.state in _LOADING) if version is not None else 0


def serving_replicas(placement: state_pb2.ModelPlacement | None) -> list[str]:
    """``<server>.<index>`` of the latest version's loaded replicas."""
    version = _latest_version(placement)
    if version is None:
        return []
    return sorted(f"{a.server}.{a.index}" for a in version.replicas if a.state in _LOADED)


def loaded_replicas(placement: state_pb2.ModelPlacement | None) -> int:
    """Replicas of the latest version an agent reported loaded in MLServer."""
    version = _latest_version(placement)
    return sum(1 for a in version.replicas if a.state in _LOADED) if version is not None else 0


def resident_replicas(placement: state_pb2.ModelPlacement | None) -> int:
    """Replicas (any version) where MLServer may still hold the model: 0 means fully unloaded."""
    if placement is None:
        return 0
    return sum(1 for v in placement.versions for a in v.replicas if a.state not in _GONE)


def routed_endpoints(route: state_pb2.ModelRoute | None) -> int:
    """Endpoints the gateway sends the model's default version's traffic to."""
    if route is None or not route.versions:
        return 0
    return len(route.versions[0].endpoints)


def available_replicas(status: state_pb2.ResourceStatus | None) -> int:
    """What ``modelplane model status`` shows as available."""
    return status.available_replicas if status is not None else 0


def in_flight(load: events_pb2.ModelLoad | None) -> int:
    """A gateway's load report: requests being answered plus requests held."""
    return load.in_flight + load.held if load is not None else 0
