"""Composition root of the gateway: builds every collaborator, starts and stops them in order.

Start: tracing, NATS, the routes bucket and its watcher task, upstream clients, then the REST
and gRPC servers (serving last, so nothing is accepted before the pieces behind it exist).
Close runs the reverse: stop accepting and let in-flight calls finish, cancel the watcher, close
upstream clients, close NATS. ``close()`` is idempotent and safe after a failed ``start()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import structlog
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from opentelemetry import trace

from modelplane.libs import dataflow_stream, store, subjects
from modelplane.libs.auth.tokens import TokenStore
from modelplane.libs.dataplane.assembly import DataPlane
from modelplane.libs.dataplane.balancers.round_robin import RoundRobin
from modelplane.libs.dataplane.routing import RouteTable
from modelplane.libs.dataplane.upstream_http import HttpUpstream
from modelplane.libs.dataplane.watcher import BucketWatcher
from modelplane.libs.gc_tuning import tune_for_large_heap
from modelplane.libs.http1.server import HttpLimits, HttpServer
from modelplane.libs.resources.convert import graph_from_pb, pipeline_from_pb
from modelplane.libs.store import disconnect
from modelplane.libs.tasks import TaskSupervisor
from modelplane.libs.telemetry import setup_tracing
from modelplane.libs.tls import grpc_server_credentials, server_ssl_context, tls_files
from modelplane.proto import open_inference_pb2_grpc as oip_grpc
from modelplane.proto import resources_pb2
from modelplane.services.gateway.access import Access
from modelplane.services.gateway.cors import CorsPolicy
from modelplane.services.gateway.dataflow import DataflowInvoker, FlowNames
from modelplane.services.gateway.experiment_watcher import ExperimentWatcher
from modelplane.services.gateway.experiments import ExperimentRouter, ExperimentTable
from modelplane.services.gateway.grpc_servicer import InferenceServicer
from modelplane.services.gateway.held_bytes import HeldBytes
from modelplane.services.gateway.kserve_v1_routes import RowProtocols
from modelplane.services.gateway.metrics import GatewayMetrics
from modelplane.services.gateway.mirroring import Mirror
from modelplane.services.gateway.openai_routes import OpenAIAdapter
from modelplane.services.gateway.planner import RequestPlanner
from modelplane.services.gateway.rest import RestAdapter
from modelplane.services.gateway.seldon_routes import SeldonAdapter
from modelplane.services.gateway.settings import GatewaySettings
from modelplane.services.gateway.upstream_grpc import GrpcUpstream

log = structlog.get_logger(__name__)

SERVICE_NAME = "modelplane-gateway"


class App:
    """The gateway process: route watcher + V2 REST server + V2 gRPC server."""

    name = "gateway"

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.shutdown_timeout = settings.shutdown_timeout
        self.routes = RouteTable()
        self.experiments = ExperimentTable()
        # Pipelines and inference graphs that exist (their requests go to the dataflow workers).
        self.pipelines = FlowNames()
        self.graphs = FlowNames()
        self.mirror: Mirror | None = None
        self.metrics = GatewayMetrics()
        # Bytes of bodies held for models with no ready replica (held_bytes.py).
        self.held_bytes = HeldBytes(
            per_model=settings.max_held_bytes_per_model, total=settings.max_held_bytes
        )
        self._tasks = TaskSupervisor("gateway")
        self._http_upstream = HttpUpstream(settings.upstream_timeout_seconds)
        self._grpc_upstream = GrpcUpstream(settings.upstream_timeout_seconds, settings.max_request_bytes)
        self._nc: NATS | None = None
        self._dataflow: DataflowInvoker | None = None
        self._http_server: HttpServer | None = None
        self._grpc_server: grpc.aio.Server | None = None
        self._closed = False
        self._token_store_: TokenStore | None = None

    @property
    def http_url(self) -> str:
        scheme = "https" if self.settings.tls_cert is not None else "http"
        return f"{scheme}://{self.settings.host}:{self.settings.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"{self.settings.host}:{self.settings.grpc_port}"

    @property
    def loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop] | None:
        """The event loop ``modelplane run gateway`` runs this app on (settings.event_loop)."""
        if self.settings.event_loop == "uvloop":
            import uvloop  # installed with MLServer; imported only where it is used

            return uvloop.new_event_loop
        return None

    def _connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def start(self) -> None:
        settings = self.settings
        # Unreadable or mismatched TLS files fail the start at once, naming the setting.
        tls = tls_files(settings.tls_cert, settings.tls_key, field="tls")
        ssl_context = server_ssl_context(tls) if tls is not None else None
        setup_tracing(SERVICE_NAME)
        tracer = trace.get_tracer("modelplane.gateway")

        self._nc = await store.connect(settings.nats_url, name=SERVICE_NAME, creds=settings.nats_creds)
        js = self._nc.jetstream()
        # The scheduler normally creates the bucket; creating it here too lets the gateway start first.
        await store.ensure_buckets(
            js,
            (
                subjects.KV_ROUTES,
                subjects.KV_EXPERIMENTS,
                subjects.KV_PIPELINES,
                subjects.KV_INFERENCE_GRAPHS,
            ),
        )
        experiments = await store.TypedBucket.open(js, subjects.KV_EXPERIMENTS, resources_pb2.Experiment)
        self._tasks.spawn("experiment-watcher", ExperimentWatcher(experiments, self.experiments).run())
        await dataflow_stream.ensure_stream(js)
        pipelines = await store.TypedBucket.open(js, subjects.KV_PIPELINES, resources_pb2.Pipeline)
        self._tasks.spawn(
            "pipeline-watcher",
            BucketWatcher(pipelines, self.pipelines, lambda _k, m: pipeline_from_pb(m), "pipeline").run(),
        )
        graphs = await store.TypedBucket.open(js, subjects.KV_INFERENCE_GRAPHS, resources_pb2.InferenceGraph)
        self._tasks.spawn(
            "graph-watcher",
            BucketWatcher(graphs, self.graphs, lambda _k, m: graph_from_pb(m), "inference graph").run(),
        )
        dataflow = DataflowInvoker(
            self._nc, js, self.pipelines, self.graphs, settings.pipeline_timeout_seconds
        )
        await dataflow.start()
        self._dataflow = dataflow

        plane = DataPlane(settings, self.routes)
        handler = await plane.start(
            self._nc, js, self._tasks, self.metrics.load, is_connected=self._connected
        )
        self.metrics.watch(handler.in_flight, plane.held)
        self.metrics.watch_held_bytes(self.held_bytes.by_model)
        access = Access(await self._token_store(js) if settings.auth == "required" else None)
        await self._http_upstream.start()
        router = ExperimentRouter(self.experiments, self.routes)
        self.mirror = Mirror(handler.ready_target)
        self.metrics.watch_mirror(self.mirror.counts)
        # The one place that decides about a request, whatever its transport (planner.py).
        planner = RequestPlanner(
            handler, access=access, experiments=router, dataflow=dataflow, held_bytes=self.held_bytes
        )

        rest = RestAdapter(
            planner,
            self._http_upstream,
            self.metrics,
            tracer,
            mirror=self.mirror,
            cors=CorsPolicy(settings.cors_origins),
            max_body_bytes=settings.max_request_bytes,
        )
        # OpenAI-compatible routes share the REST server (and its tracing/request-id handling).
        OpenAIAdapter(planner, self._http_upstream, self.mirror).register(rest.router)
        # KServe V1 (kserve_v1_routes.py), and Seldon Core v1's protocol and paths on the same
        # V2 calls (seldon_routes.py), likewise.
        rows = RowProtocols(rest)
        rows.register(rest.router)
        SeldonAdapter(rest, rows, planner).register(rest.router)
        self._http_server = HttpServer(
            rest.serve,
            HttpLimits(
                max_body_bytes=settings.max_request_bytes,
                keepalive_seconds=settings.keepalive_seconds,
                max_request_line_bytes=settings.max_request_line_bytes,
                max_header_bytes=settings.max_header_bytes,
                max_headers_bytes=settings.max_headers_bytes,
                max_headers=settings.max_headers,
                header_timeout_seconds=settings.header_timeout_seconds,
                body_timeout_seconds=settings.body_timeout_seconds,
                max_connections=settings.max_connections,
            ),
            # A refusal from the request's head (origin, token, held bytes): its body is never read.
            admit=rest.admit,
            ssl=ssl_context,
        )
        await self._http_server.start(settings.host, settings.http_port)

        self._grpc_server = grpc.aio.server(
            options=[
                ("grpc.max_send_message_length", settings.max_request_bytes),
                ("grpc.max_receive_message_length", settings.max_request_bytes),
            ]
        )
        oip_grpc.add_GRPCInferenceServiceServicer_to_server(
            InferenceServicer(planner, self._grpc_upstream, self.metrics, tracer, mirror=self.mirror),
            self._grpc_server,
        )
        address = f"{settings.host}:{settings.grpc_port}"
        if tls is not None:
            self._grpc_server.add_secure_port(address, grpc_server_credentials(tls))
        else:
            self._grpc_server.add_insecure_port(address)
        await self._grpc_server.start()
        log.info(
            "gateway_listening",
            http=self.http_url,
            grpc=self.grpc_target,
            balancer=RoundRobin().describe(),
            auth=settings.auth,
            tls=tls is not None,
            cors_origins=len(settings.cors_origins),
        )

    async def _token_store(self, js: JetStreamContext) -> TokenStore:
        """The api's tokens (hashed), read from their KV bucket and kept current by a watch;
        the gateway only reads them (its NATS user may not write the bucket, so it does not
        create it either: `up` and the api do, before the gateway needs it)."""
        tokens = await TokenStore.open(js)
        self._token_store_ = tokens
        await tokens.start()
        return tokens

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Stop accepting first; in-flight calls finish within the grace period.
        if self._grpc_server is not None:
            await self._grpc_server.stop(self.settings.grpc_grace_seconds)
        if self._http_server is not None:
            await self._http_server.stop(self.settings.grpc_grace_seconds)
        await self._tasks.close()
        if self._token_store_ is not None:
            await self._token_store_.close()
        if self._dataflow is not None:
            await self._dataflow.close()
        if self.mirror is not None:
            await self.mirror.close()
        await self._http_upstream.close()
        await self._grpc_upstream.close()
        await disconnect(self._nc)
        log.info("gateway_closed")


def create() -> App:
    """The gateway configured from ``MODELPLANE_GATEWAY_*`` and ``MODELPLANE_*`` variables."""
    settings = GatewaySettings()
    # Process-wide, so done by the process's composition root, not by the app tests share.
    tune_for_large_heap(settings.gc_young_threshold)
    return App(settings)
