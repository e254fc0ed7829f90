"""Who may publish and subscribe to what on NATS: one user per service, least privilege.

Design: the embedded nats-server of `modelplane up` admits no anonymous client; every service
connects as its own user, and this module is the one table of what each user may do, derived
from what the code publishes, subscribes, puts and watches (``subjects.py`` names every subject
and bucket). A rule is a NATS subject pattern the user may publish to or subscribe to; anything
not allowed is denied, and the server logs a "Permissions Violation" (the e2e tests assert a
normal run logs none).

How JetStream maps onto subjects (nats-py 2.x against nats-server 2.10+):

- A KV bucket ``b`` is the stream ``KV_b``. A put, create, update or delete is a publish to
  ``$KV.b.<key>`` (so write rights can be narrowed to one key). Reading goes through the JS API:
  ``$JS.API.STREAM.INFO.KV_b`` (opening the bucket), ``$JS.API.DIRECT.GET.KV_b...`` or
  ``$JS.API.STREAM.MSG.GET.KV_b`` (get), ``$JS.API.CONSUMER.CREATE.KV_b...`` and
  ``$JS.API.CONSUMER.DELETE.KV_b...`` (watch, keys), and the answers to the watch's flow control
  ``$JS.FC.KV_b...``.
- Every answer (JS API replies, acks of JetStream publishes, watch deliveries, request/reply)
  arrives under the user's own inbox prefix ``_INBOX.<user>`` (``subjects.user_inbox_prefix``);
  a user may subscribe only there, so nobody reads another user's answers.
- A service that answers requests (agents, storage) gets ``allow_responses``: it may publish to
  the reply subject of a request it received, once, and to no other inbox. So an agent cannot
  answer for another agent, and cannot publish another agent's commands.

Known limits: a user allowed to create consumers on a stream (every KV reader, for its
watches) chooses their delivery subject in the request body, which subject permissions cannot
check, so it can have a stream's content pushed into any subject; the subscribers of commands,
reports, heartbeats, fetches and load signals therefore skip messages a JetStream consumer
delivered (``nats_messages.peer_only``). Heartbeats and reports are one shared subject for all
agents, so an agent could send a report naming another replica (the scheduler trusts the
replica id in it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from modelplane.libs import subjects

# Service users of `modelplane up`; each process gets its own (the placement agents one per
# replica, see ``agent_user``). ``up`` itself creates the buckets and launches the agents.
SERVICE_USERS = ("up", "api", "scheduler", "status", "storage", "gateway", "dataflow", "autoscaler")

_JS_API = "$JS.API"


def agent_user(server: str, index: int) -> str:
    """NATS user of one replica's placement agent, e.g. ``agent-mlserver-0``.

    Unambiguous: server names never end with ``-`` and the index is the last ``-`` token.
    """
    return f"agent-{server}-{index}"


@dataclass(frozen=True, slots=True)
class Permissions:
    """What one NATS user may publish and subscribe to (nats-server ``permissions`` block)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # May publish to the reply subject of a request it received (once), to no other inbox.
    allow_responses: bool = False

    def to_config(self) -> dict[str, object]:
        out: dict[str, object] = {
            "publish": {"allow": list(self.publish)},
            "subscribe": {"allow": list(self.subscribe)},
        }
        if self.allow_responses:
            out["allow_responses"] = True
        return out


@dataclass
class _Rules:
    """Collects one user's rules; the helpers below name what a rule is for."""

    user: str
    publish: list[str] = field(default_factory=list)
    subscribe: list[str] = field(default_factory=list)
    allow_responses: bool = False

    def __post_init__(self) -> None:
        # Every answer to this user (request/reply, JS API, acks, watch deliveries) comes here.
        self.subscribe.append(f"{subjects.user_inbox_prefix(self.user)}.>")

    def pub(self, *patterns: str) -> _Rules:
        self.publish.extend(patterns)
        return self

    def sub(self, *patterns: str) -> _Rules:
        self.subscribe.extend(patterns)
        return self

    def open_buckets(self, buckets: Iterable[str]) -> _Rules:
        """``store.ensure_buckets``/``js.key_value``: look a bucket up (its config and counts,
        no values). Only ``up`` may create the buckets; it does so before any service starts."""
        return self.pub(*(f"{_JS_API}.STREAM.INFO.KV_{b}" for b in buckets))

    def create_buckets(self, buckets: Iterable[str]) -> _Rules:
        return self.pub(*(f"{_JS_API}.STREAM.CREATE.KV_{b}" for b in buckets))

    def kv_read(self, *buckets: str) -> _Rules:
        """get, keys and watch of a bucket."""
        for b in buckets:
            stream = f"KV_{b}"
            self.pub(
                f"{_JS_API}.STREAM.INFO.{stream}",
                f"{_JS_API}.DIRECT.GET.{stream}",
                f"{_JS_API}.DIRECT.GET.{stream}.>",
                f"{_JS_API}.STREAM.MSG.GET.{stream}",
                f"{_JS_API}.CONSUMER.CREATE.{stream}",
                f"{_JS_API}.CONSUMER.CREATE.{stream}.>",
                f"{_JS_API}.CONSUMER.INFO.{stream}.*",
                f"{_JS_API}.CONSUMER.DELETE.{stream}.*",
                # The watch answers the server's flow-control requests.
                f"$JS.FC.{stream}.>",
            )
        return self

    def kv_write(self, bucket: str, key: str = ">") -> _Rules:
        """put, create, update and delete of ``key`` (every key by default) in a bucket."""
        return self.pub(f"$KV.{bucket}.{key}")

    def kv_read_write(self, *buckets: str) -> _Rules:
        for b in buckets:
            self.kv_read(b).kv_write(b)
        return self

    def dataflow_stream_setup(self) -> _Rules:
        """``dataflow_stream.ensure_stream``: create the stream or bring it to its config."""
        return self.pub(
            f"{_JS_API}.STREAM.INFO.{subjects.DATAFLOW_STREAM}",
            f"{_JS_API}.STREAM.CREATE.{subjects.DATAFLOW_STREAM}",
            f"{_JS_API}.STREAM.UPDATE.{subjects.DATAFLOW_STREAM}",
        )

    def data_plane(self) -> _Rules:
        """What ``libs/dataplane`` does for the gateway and the dataflow workers alike."""
        return self.pub(
            # Load signals for the autoscaler, and the wake-up of a model at zero replicas.
            subjects.ALL_GATEWAY_LOAD,
            subjects.ALL_GATEWAY_WAKE,
            # Make an evicted model resident again (request/reply to the replica's agent) ...
            f"{subjects.AGENT_PREFIX}.*.*.ensure",
            # ... and tell the agent which of its models served requests.
            f"{subjects.AGENT_PREFIX}.*.*.usage",
        ).kv_read(subjects.KV_ROUTES)

    def build(self) -> Permissions:
        return Permissions(
            publish=tuple(dict.fromkeys(self.publish)),
            subscribe=tuple(dict.fromkeys(self.subscribe)),
            allow_responses=self.allow_responses,
        )


def _every_bucket() -> tuple[str, ...]:
    return tuple(dict.fromkeys((*subjects.ALL_BUCKETS, subjects.KV_TOKENS)))


def service_permissions(user: str) -> Permissions:
    """The permissions of one service user (one of ``SERVICE_USERS``)."""
    r = _Rules(user)
    dataflow_requests = (
        f"{subjects.DATAFLOW_PREFIX}.pipeline.*.inputs.*",
        f"{subjects.DATAFLOW_PREFIX}.graph.*.inputs.*",
    )
    if user == "up":
        # Creates every bucket before the services start, watches the Servers to launch their
        # agents (sized from their ServerConfigs), writes the first admin token, and records a
        # replica it refused to start (too many, or not enough memory) as unavailable.
        r.open_buckets(_every_bucket()).create_buckets(_every_bucket())
        r.kv_read(subjects.KV_SERVERS, subjects.KV_SERVER_CONFIGS)
        r.kv_read_write(subjects.KV_TOKENS, subjects.KV_REPLICAS)
    elif user == "api":
        # The only writer of desired state and of the tokens; reads what it reports.
        r.open_buckets(_every_bucket())
        r.kv_read_write(*subjects.DESIRED_BUCKETS, subjects.KV_TOKENS)
        # The tokens bucket is the api's own: it may create it when `up` has not.
        r.create_buckets((subjects.KV_TOKENS,))
        r.kv_read(subjects.KV_STATUS, subjects.KV_REPLICAS, subjects.KV_DATAFLOW)
        # Thin events about the resources it changed.
        r.pub(subjects.ALL_EVENTS)
        # `model load` progress of one model's download.
        r.sub(f"{subjects.STORAGE_PROGRESS_PREFIX}.*")
        # `pipeline inspect` reads the last messages of a request from the dataflow stream.
        r.pub(
            f"{_JS_API}.STREAM.MSG.GET.{subjects.DATAFLOW_STREAM}",
            f"{_JS_API}.DIRECT.GET.{subjects.DATAFLOW_STREAM}",
            f"{_JS_API}.DIRECT.GET.{subjects.DATAFLOW_STREAM}.>",
        )
    elif user == "scheduler":
        r.open_buckets(_every_bucket())
        r.kv_read(subjects.KV_MODELS, subjects.KV_SERVERS, subjects.KV_SERVER_CONFIGS, subjects.KV_REPLICAS)
        # Observed state it alone writes.
        r.kv_read_write(
            subjects.KV_PLACEMENTS, subjects.KV_ROUTES, subjects.KV_SERVER_STATES, subjects.KV_SCALE_REQUESTS
        )
        # Its own leader lease only.
        r.kv_read(subjects.KV_LEASES).kv_write(subjects.KV_LEASES, subjects.SCHEDULER_LEASE)
        # load/unload requests to every agent; the agents answer into the scheduler's inbox.
        r.pub(f"{subjects.AGENT_PREFIX}.*.*.load", f"{subjects.AGENT_PREFIX}.*.*.unload")
        r.pub(subjects.ALL_SCALE_REQUESTS)
        r.sub(subjects.AGENT_REPORTS, subjects.AGENT_HEARTBEATS)
    elif user == "status":
        r.open_buckets(_every_bucket())
        r.kv_read(
            subjects.KV_MODELS,
            subjects.KV_PLACEMENTS,
            subjects.KV_AUTOSCALER,
            subjects.KV_SERVERS,
            subjects.KV_REPLICAS,
            subjects.KV_SERVER_STATES,
            subjects.KV_SCALE_REQUESTS,
        )
        r.kv_read_write(subjects.KV_STATUS)
        r.sub(subjects.ALL_STORAGE_PROGRESS)
    elif user == "storage":
        # Serves fetch requests (in a queue group) and answers each one; no KV at all.
        r.sub(subjects.STORAGE_FETCH, subjects.STORAGE_RELEASE)
        r.pub(subjects.ALL_STORAGE_PROGRESS)
        r.allow_responses = True
    elif user == "gateway":
        # Reads routes, experiments, pipelines, graphs and tokens; writes no state at all.
        watched = (
            subjects.KV_ROUTES,
            subjects.KV_EXPERIMENTS,
            subjects.KV_PIPELINES,
            subjects.KV_INFERENCE_GRAPHS,
        )
        r.open_buckets(watched).kv_read(*watched, subjects.KV_TOKENS)
        r.data_plane().dataflow_stream_setup()
        # Requests to pipelines and graphs; their answers come back into the gateway's inbox.
        r.pub(*dataflow_requests)
    elif user == "dataflow":
        r.open_buckets(_every_bucket())
        r.data_plane().dataflow_stream_setup()
        r.kv_read(subjects.KV_PIPELINES, subjects.KV_INFERENCE_GRAPHS)
        r.kv_read_write(subjects.KV_DATAFLOW, subjects.KV_CHAIN_JOINS)
        # The chain joins bucket has its own TTL config: the workers create it.
        r.create_buckets((subjects.KV_CHAIN_JOINS,))
        # Outputs, step records and chained requests, all into the dataflow stream.
        r.pub(subjects.ALL_DATAFLOW)
        # Answers go to the gateway's inbox only (the Modelplane-Reply-To header names it).
        r.pub(f"{subjects.user_inbox_prefix('gateway')}.>")
        # The shared durable push consumer: create/look it up, acknowledge its messages.
        workers = f"{subjects.DATAFLOW_STREAM}.{subjects.DATAFLOW_WORKERS_CONSUMER}"
        r.pub(
            f"{_JS_API}.CONSUMER.DURABLE.CREATE.{workers}",
            f"{_JS_API}.CONSUMER.CREATE.{workers}",
            f"{_JS_API}.CONSUMER.CREATE.{workers}.>",
            f"{_JS_API}.CONSUMER.INFO.{workers}",
            # Replace a consumer of an older `up` that delivers outside the dataflow inbox.
            f"{_JS_API}.CONSUMER.DELETE.{workers}",
            f"$JS.ACK.{workers}.>",
        )
    elif user == "autoscaler":
        r.open_buckets(_every_bucket())
        r.kv_read(
            subjects.KV_MODELS,
            subjects.KV_SERVERS,
            subjects.KV_SERVER_CONFIGS,
            subjects.KV_SCALE_REQUESTS,
            subjects.KV_SERVER_STATES,
        )
        r.kv_read_write(subjects.KV_AUTOSCALER)
        r.kv_read(subjects.KV_LEASES).kv_write(subjects.KV_LEASES, subjects.AUTOSCALER_LEASE)
        r.sub(subjects.ALL_GATEWAY_LOAD, subjects.ALL_GATEWAY_WAKE)
        r.pub(subjects.ALL_EVENTS)
    else:
        raise ValueError(f"unknown NATS service user {user!r}")
    return r.build()


def agent_permissions(server: str, index: int) -> Permissions:
    """The permissions of the placement agent of replica ``index`` of ``server``."""
    r = _Rules(agent_user(server, index))
    r.open_buckets(_every_bucket())
    # Its Server and ServerConfig (the runtime profile), the scheduler's lease (is one active?).
    r.kv_read(subjects.KV_SERVERS, subjects.KV_SERVER_CONFIGS, subjects.KV_LEASES, subjects.KV_REPLICAS)
    # Its own replica's key only: it cannot register or remove another replica.
    r.kv_write(subjects.KV_REPLICAS, subjects.replica_key(server, index))
    # Its own commands only (load, unload, ensure, usage); it answers them (allow_responses) and
    # no other agent's.
    r.sub(f"{subjects.AGENT_PREFIX}.{server}.{index}.*")
    r.allow_responses = True
    r.pub(subjects.AGENT_REPORTS, subjects.AGENT_HEARTBEATS)
    # Artifact downloads: a fetch request to storage, then a release once copied.
    r.pub(subjects.STORAGE_FETCH, subjects.STORAGE_RELEASE)
    return r.build()
