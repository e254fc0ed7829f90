"""Every NATS subject and KV bucket name modelplane uses, in one place.

Subjects are dot-separated; tokens taken from resource names are safe because resource names
match ``^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`` (no dots, no wildcards).
"""

from __future__ import annotations

# ---- KV buckets (desired state) -------------------------------------------------------------
KV_MODELS = "modelplane_models"
KV_SERVERS = "modelplane_servers"
KV_SERVER_CONFIGS = "modelplane_serverconfigs"
# key "<experiment>" -> Experiment, written by the api, read by gateways.
KV_EXPERIMENTS = "modelplane_experiments"
# key "<pipeline>" -> Pipeline, written by the api, read by dataflow workers and gateways.
KV_PIPELINES = "modelplane_pipelines"
# key "<graph>" -> InferenceGraph, written by the api, read by dataflow workers and gateways.
KV_INFERENCE_GRAPHS = "modelplane_inferencegraphs"
# ---- KV buckets (observed state) ------------------------------------------------------------
# key "<server>.<index>" -> ReplicaInfo, written by the replica's placement agent.
KV_REPLICAS = "modelplane_replicas"
# key "<model>" -> ModelPlacement, written by the scheduler only.
KV_PLACEMENTS = "modelplane_placements"
# key "<model>" -> ModelRoute, written by the scheduler, read by gateways.
KV_ROUTES = "modelplane_routes"
# key "<kind>.<name>" -> ResourceStatus, written by the status service.
KV_STATUS = "modelplane_status"
# key "<server>" -> ServerState (booked memory per replica), written by the scheduler only.
KV_SERVER_STATES = "modelplane_server_states"
# key "<server>" -> ServerScaleRequest (the pending one), written by the scheduler only.
KV_SCALE_REQUESTS = "modelplane_scale_requests"
# key "<lease name>" (e.g. "scheduler") -> Lease, written by the instances competing for it.
KV_LEASES = "modelplane_leases"
# key "<model>" -> ModelScaling (moving average, last decision), written by the autoscaler.
KV_AUTOSCALER = "modelplane_autoscaler"
# key "<kind>.<name>" (e.g. "Pipeline.chain") -> DataflowState: the generation the dataflow
# workers run, or why they cannot; written by every worker that takes the resource on.
KV_DATAFLOW = "modelplane_dataflow"

# key "<Kind>.<namespace>.<name>" -> ForeignRecord: a foreign manifest (KServe, Seldon v1) as
# applied and the native resources derived from it; written and read by the api only.
KV_FOREIGN = "modelplane_foreign"

# ---- KV buckets (credentials) ----------------------------------------------------------------
# key "<token name>" -> TokenRecord (role and SHA-256 of the token, never the token), written by
# the api (and by `up` at bootstrap), read by the api and the gateways.
KV_TOKENS = "modelplane_tokens"

# The scheduler's leader lease (a key in KV_LEASES); agents read it to know a scheduler is active.
SCHEDULER_LEASE = "scheduler"
# The autoscaler's leader lease: one instance decides, the others keep warm on standby.
AUTOSCALER_LEASE = "autoscaler"

DESIRED_BUCKETS = (
    KV_MODELS,
    KV_SERVERS,
    KV_SERVER_CONFIGS,
    KV_EXPERIMENTS,
    KV_PIPELINES,
    KV_INFERENCE_GRAPHS,
    KV_FOREIGN,
)
OBSERVED_BUCKETS = (
    KV_REPLICAS,
    KV_PLACEMENTS,
    KV_ROUTES,
    KV_STATUS,
    KV_SERVER_STATES,
    KV_SCALE_REQUESTS,
    KV_DATAFLOW,
    KV_AUTOSCALER,
)
COORDINATION_BUCKETS = (KV_LEASES,)
AUTH_BUCKETS = (KV_TOKENS,)
ALL_BUCKETS = DESIRED_BUCKETS + OBSERVED_BUCKETS + COORDINATION_BUCKETS + AUTH_BUCKETS

# ---- Thin events ----------------------------------------------------------------------------
EVENTS_PREFIX = "modelplane.events"


def resource_event(kind: str, name: str) -> str:
    """Subject of thin events about one resource, e.g. ``modelplane.events.Model.iris``."""
    return f"{EVENTS_PREFIX}.{kind}.{name}"


ALL_EVENTS = f"{EVENTS_PREFIX}.>"

# The scheduler publishes a thin Event (type scale_up | scale_down | scale_cleared) here whenever a
# server's pending ServerScaleRequest changes; the request itself is in KV_SCALE_REQUESTS.
SCALE_REQUESTS_PREFIX = "modelplane.scheduler.scale"


def server_scale_request(server: str) -> str:
    """Subject of scale request events about one server, e.g. ``modelplane.scheduler.scale.mlserver``."""
    return f"{SCALE_REQUESTS_PREFIX}.{server}"


ALL_SCALE_REQUESTS = f"{SCALE_REQUESTS_PREFIX}.>"

# ---- Placement agents -----------------------------------------------------------------------
AGENT_PREFIX = "modelplane.agent"


def agent_command(server: str, index: int, command: str) -> str:
    """Request/reply subject of one replica's agent; command is ``load``, ``unload`` (from the
    scheduler) or ``ensure`` (from the gateway: make an evicted model resident again)."""
    return f"{AGENT_PREFIX}.{server}.{index}.{command}"


def agent_usage(server: str, index: int) -> str:
    """The gateway publishes ModelUsage here: which models of the replica served requests."""
    return f"{AGENT_PREFIX}.{server}.{index}.usage"


# Agents publish ModelReplicaReport here; the scheduler subscribes.
AGENT_REPORTS = "modelplane.agent.reports"
# Agents publish Heartbeat here every heartbeat interval.
AGENT_HEARTBEATS = "modelplane.agent.heartbeats"

# ---- Gateway --------------------------------------------------------------------------------
# The gateway publishes ModelLoad here (per model) about once a second; the autoscaler listens.
GATEWAY_LOAD_PREFIX = "modelplane.gateway.load"


def gateway_load(model: str) -> str:
    return f"{GATEWAY_LOAD_PREFIX}.{model}"


ALL_GATEWAY_LOAD = f"{GATEWAY_LOAD_PREFIX}.>"

# A gateway (or dataflow worker) publishes ModelWake here the moment it starts holding requests
# for a model with no ready replica: the autoscaler scales a model at zero replicas to one at
# once instead of at its next tick (KubeAI's scale-from-zero).
GATEWAY_WAKE_PREFIX = "modelplane.gateway.wake"


def gateway_wake(model: str) -> str:
    return f"{GATEWAY_WAKE_PREFIX}.{model}"


ALL_GATEWAY_WAKE = f"{GATEWAY_WAKE_PREFIX}.>"

# ---- Dataflow (pipelines and inference graphs) ----------------------------------------------
# One JetStream stream holds every dataflow subject below: requests (work queue for the dataflow
# workers), results (read by the gateway waiting for them, and by chained pipelines), and the
# record of each request's steps (for ``pipeline inspect``). Request ids are subject tokens (hex).
DATAFLOW_STREAM = "MODELPLANE_DATAFLOW"
DATAFLOW_PREFIX = "modelplane.dataflow"
ALL_DATAFLOW = f"{DATAFLOW_PREFIX}.>"
# The durable pull consumer all dataflow workers share: each request goes to one worker.
DATAFLOW_WORKERS_CONSUMER = "dataflow-workers"
# Subject filter of that consumer: the requests of every pipeline and graph.
ALL_DATAFLOW_REQUESTS = f"{DATAFLOW_PREFIX}.*.*.inputs.*"


def pipeline_inputs(pipeline: str, request_id: str) -> str:
    """A request to a pipeline: a V2 inference request (JSON)."""
    return f"{DATAFLOW_PREFIX}.pipeline.{pipeline}.inputs.{request_id}"


def pipeline_outputs(pipeline: str, request_id: str) -> str:
    """The pipeline's answer to one request: a V2 inference response, or an error."""
    return f"{DATAFLOW_PREFIX}.pipeline.{pipeline}.outputs.{request_id}"


def pipeline_steps(pipeline: str, request_id: str) -> str:
    """What each step of one request was sent and answered, as one JSON list of
    ``{"step", "port": "inputs"|"outputs", "message"}`` in the order it happened (``inspect``)."""
    return f"{DATAFLOW_PREFIX}.steps.{pipeline}.{request_id}"


def graph_inputs(graph: str, request_id: str) -> str:
    """A request to an InferenceGraph: the caller's JSON body as sent."""
    return f"{DATAFLOW_PREFIX}.graph.{graph}.inputs.{request_id}"


def graph_outputs(graph: str, request_id: str) -> str:
    return f"{DATAFLOW_PREFIX}.graph.{graph}.outputs.{request_id}"


# key "<chained pipeline>.<request id>" -> JSON: what each upstream event brought to a chained
# pipeline joining several of them (input.externalInputs from different pipelines/steps); kept
# until the join holds, then expires (the bucket has a TTL). Written by dataflow workers.
KV_CHAIN_JOINS = "modelplane_chain_joins"

# ---- Storage --------------------------------------------------------------------------------
# Request/reply FetchRequest -> FetchReply, served by the storage service in a queue group.
STORAGE_FETCH = "modelplane.storage.fetch"
STORAGE_QUEUE = "modelplane-storage"
# The storage service publishes FetchProgress here while it downloads an artifact for a model.
STORAGE_PROGRESS_PREFIX = "modelplane.storage.progress"
# Callers publish FetchRelease here once they copied a fetched path; every storage instance
# listens (not a queue group): only the one holding the lease knows its id.
STORAGE_RELEASE = "modelplane.storage.release"


def storage_progress(model: str) -> str:
    """Subject of download progress for one model, e.g. ``modelplane.storage.progress.iris``."""
    return f"{STORAGE_PROGRESS_PREFIX}.{model}"


ALL_STORAGE_PROGRESS = f"{STORAGE_PROGRESS_PREFIX}.>"


def replica_key(server: str, index: int) -> str:
    """KV key of a server replica in KV_REPLICAS."""
    return f"{server}.{index}"


def status_key(kind: str, name: str) -> str:
    """KV key of a resource's status in KV_STATUS."""
    return f"{kind}.{name}"


# ---- Per-user inboxes ---------------------------------------------------------------------
# Each NATS user receives replies (request/reply, JetStream API answers, consumer deliveries) only
# under its own prefix, so no user can subscribe to another's replies (nats_permissions.py).
INBOX_ROOT = "_INBOX"


def user_inbox_prefix(user: str) -> str:
    """The inbox prefix of one NATS user, e.g. ``_INBOX.gateway`` (no dots in user names)."""
    return f"{INBOX_ROOT}.{user}"
