"""The status service's own view of its inputs and output (protobuf stays in converters.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AssignmentView:
    server: str
    index: int
    state: int
    reason: str = ""
    updated_at: str = ""


@dataclass(frozen=True, slots=True)
class VersionView:
    version: int
    replicas: tuple[AssignmentView, ...] = ()
    reason: str = ""
    schedule_failed: bool = False


@dataclass(frozen=True, slots=True)
class PlacementView:
    model: str
    versions: tuple[VersionView, ...] = ()
    # The model generation the scheduler last acted on.
    generation: int = 0


# Download phases as the storage service reports them (FetchProgress.phase).
PHASE_DOWNLOADING = "downloading"
PHASE_CACHED = "cached"
PHASE_DONE = "done"
PHASE_FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DownloadView:
    """How far the download of one model version's artifact got."""

    version: int
    phase: str
    bytes_done: int = 0
    # 0 while the size is not known.
    bytes_total: int = 0
    bytes_per_second: float = 0.0
    uri: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ModelView:
    name: str
    generation: int
    replicas: int
    min_replicas: int
    # The spec asks for autoscaling (spec.autoscaling is set, disabled or not): only then does
    # the status show the autoscaler's record (a record left over from before is not shown).
    autoscaled: bool = False


@dataclass(frozen=True, slots=True)
class ServerView:
    name: str
    generation: int
    replicas: int


@dataclass(frozen=True, slots=True)
class ReplicaView:
    server: str
    index: int
    unavailable_reason: str = ""
    registered_at: str = ""


@dataclass(frozen=True, slots=True)
class ReplicaUsageView:
    """Memory the scheduler booked on one server replica (from ServerState)."""

    index: int
    memory_bytes: int = 0
    overcommit_percent: int = 0
    reserved_bytes: int = 0
    loaded_bytes: int = 0
    available_bytes: int = 0
    models: tuple[str, ...] = ()
    draining: bool = False


@dataclass(frozen=True, slots=True)
class ScaleRequestView:
    """The scheduler's pending request to change a server's replica count."""

    server: str
    current_replicas: int
    target_replicas: int
    direction: str
    reason: str = ""
    requested_at: str = ""

    def describe(self) -> str:
        text = f"scale {self.direction} from {self.current_replicas} to {self.target_replicas} replicas"
        if self.reason:
            text += f": {self.reason}"
        if self.requested_at:
            text += f" (requested {self.requested_at})"
        return text


@dataclass(frozen=True, slots=True)
class AutoscalingView:
    """The autoscaler's record of one model (KV_AUTOSCALER): its state and last decision."""

    model: str
    current_replicas: int
    desired_replicas: int
    reason: str = ""
    # RFC 3339 time of the decision.
    at: str = ""
    # The autoscaler's moving average of the metric and the ticks in a row that wanted fewer.
    average: float = 0.0
    down_count: int = 0


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    server: str
    index: int
    state: str
    reason: str = ""
    updated_at: str = ""
    # Server replicas only: what the scheduler booked there.
    usage: ReplicaUsageView | None = None


@dataclass(frozen=True, slots=True)
class Status:
    """Mirrors state_pb2.ResourceStatus."""

    kind: str
    name: str
    state: str
    reason: str = ""
    available_replicas: int = 0
    total_replicas: int = 0
    unavailable_replicas: int = 0
    version: int = 0
    generation: int = 0
    replicas: tuple[ReplicaStatus, ...] = ()
    last_change: str = ""
    # Servers only: the pending scale request in words ("" when there is none).
    scale_request: str = ""
    # Models only: each placed version's download (by version) and the generation the state is for.
    downloads: tuple[DownloadView, ...] = ()
    observed_generation: int = 0
    # Models only: the autoscaler's last decision (None when the model is not autoscaled).
    autoscaling: AutoscalingView | None = None
