"""The gateway's one transport-neutral request planner: what a request may do and where it goes.

Design (as MLServer's ``handlers/dataplane.py``): the REST, gRPC and OpenAI adapters only
translate. Each turns its request into an ``Inbound`` (the name it asks for, its version, its
headers or metadata) and asks ``RequestPlanner.plan`` once; the ``Plan`` says who is asking
(auth), which model, pipeline or graph serves (the ``seldon-model`` header, then experiments),
the ``x-seldon-route`` value to answer with, the mirror to copy to, and the metric label. Then
``target`` resolves the model's replicas, holding the request (bounded in time, in number and
in bytes: held_bytes.py) while the model has none ready. Every transport gets the same checks,
the same experiments and the same mirrors, because there is only this one place that decides.

Seldon Core v1's paths name a deployment (``/seldon/<namespace>/<name>/...``): ``deployment``
turns it into a name to plan (a model, else ``<name>.pipeline``), and the ``Inbound`` is
``pinned`` so a ``seldon-model`` header cannot redirect it. Namespaces are that function's
parameter; only ``default`` exists today.

Auth: each adapter calls ``authenticate`` once per request at its entry, for every route but
the health probes and /metrics (load balancers and Prometheus carry no token); the decision is
``Access``'s (access.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modelplane.libs.auth.tokens import Principal
from modelplane.libs.dataplane.handler import GatewayHandler, Target
from modelplane.libs.errors import RetryableError
from modelplane.libs.resources.importers.base import DEFAULT_NAMESPACE
from modelplane.libs.resources.namespacing import native_name, service_name
from modelplane.services.gateway.access import Access
from modelplane.services.gateway.dataflow import PIPELINE, PIPELINE_SUFFIX, DataflowInvoker, flow_of
from modelplane.services.gateway.experiments import EXPERIMENT_SUFFIX, ExperimentRouter, ExperimentTable
from modelplane.services.gateway.held_bytes import HeldBytes, Reservation
from modelplane.services.gateway.metrics import UNKNOWN_MODEL

SELDON_MODEL_HEADER = "seldon-model"
# Seldon's header naming the namespace of the model, pipeline or deployment asked for.
SELDON_NAMESPACE_HEADER = "seldon-namespace"
# Suffixes that name a pipeline, graph or experiment rather than a model (``iris.pipeline``).
_FLOW_SUFFIXES = (".pipeline", ".graph", ".experiment")


@dataclass(frozen=True, slots=True)
class Inbound:
    """One request as its adapter read it: the name it asks for and its headers (lower-case)."""

    requested: str
    headers: Mapping[str, str]
    version: str | None = None
    # True when ``requested`` is the deployment a Seldon path named (``deployment``): the
    # ``seldon-model`` header does not override it.
    pinned: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """Where one request goes and what its answer carries."""

    # The model (or ``<name>.pipeline`` / ``<name>.graph``) that answers, after experiments.
    name: str
    # (kind, name) when a pipeline or an inference graph answers; None for a model.
    flow: tuple[str, str] | None
    # The metric label: ``name`` when it exists, else the shared "unknown" label.
    metric_label: str
    # Value of the x-seldon-route response header; None when no experiment was involved.
    route_header: str | None = None
    # Model or ``<name>.pipeline`` to send a fire-and-forget copy to, if any.
    mirror: str | None = None


def in_namespace(name: str, namespace: str) -> str:
    """``name`` (a model, or ``<name>.pipeline`` / ``.graph`` / ``.experiment``) as the services
    know it in ``namespace``; "" or ``default`` leave it as it is."""
    for suffix in _FLOW_SUFFIXES:
        if name.endswith(suffix):
            return service_name(name[: -len(suffix)], namespace) + suffix
    return service_name(name, namespace)


class RequestPlanner:
    """Auth, naming, experiments, flows, mirrors and the bounded hold, for every transport."""

    def __init__(
        self,
        handler: GatewayHandler,
        *,
        access: Access | None = None,
        experiments: ExperimentRouter | None = None,
        dataflow: DataflowInvoker | None = None,
        held_bytes: HeldBytes | None = None,
    ) -> None:
        self._handler = handler
        self._access = access if access is not None else Access(None)
        self._experiments = experiments if experiments is not None else ExperimentRouter(ExperimentTable())
        # None: the gateway serves models only (pipelines and graphs are then unknown names).
        self._dataflow = dataflow
        self._held_bytes = held_bytes if held_bytes is not None else HeldBytes.unbounded()

    @property
    def handler(self) -> GatewayHandler:
        return self._handler

    @property
    def dataflow(self) -> DataflowInvoker | None:
        return self._dataflow

    @property
    def held_bytes(self) -> HeldBytes:
        return self._held_bytes

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller, when auth is required (401 / 403 raised); None when the gateway is open."""
        return await self._access.check(headers)

    def precheck(self, headers: Mapping[str, str]) -> Principal | None:
        """What ``authenticate`` can decide from a request's head alone: the caller when that
        settled it, None when ``authenticate`` must still run (or the gateway is open)."""
        return self._access.precheck(headers)

    def model_name(self, requested: str, headers: Mapping[str, str]) -> str:
        """The name a request asks for, as the services know it (``libs.resources.namespacing``):
        the ``seldon-model`` header wins over the URL/field; the ``seldon-namespace`` header
        names its namespace (unqualified names mean ``default``); else a
        ``Host: <name>.<namespace>.<domain>`` naming the same model reaches that namespace's
        (KServe's addressing)."""
        name = self._handler.model_name(requested, headers.get(SELDON_MODEL_HEADER))
        namespace = (headers.get(SELDON_NAMESPACE_HEADER) or "").strip()
        if namespace:
            return in_namespace(name, namespace)
        host = headers.get("host") or headers.get(":authority") or ""
        labels = host.split(":", 1)[0].split(".")
        if len(labels) >= 3 and labels[0] == name and labels[1] != DEFAULT_NAMESPACE:
            namespaced = native_name(name, labels[1])
            if self._known(namespaced):
                return namespaced
        return name

    def flow_name(self, name: str, headers: Mapping[str, str]) -> str:
        """A pipeline or graph named in a URL, in the ``seldon-namespace`` header's namespace."""
        return in_namespace(name, (headers.get(SELDON_NAMESPACE_HEADER) or "").strip())

    def _known(self, name: str) -> bool:
        return self._handler.knows(name) or self._experiments.splits(name)

    def _asked(self, inbound: Inbound) -> str:
        return inbound.requested if inbound.pinned else self.model_name(inbound.requested, inbound.headers)

    def deployment(self, namespace: str, name: str) -> str:
        """What a Seldon Core v1 deployment ``<namespace>/<name>`` is here, as a name to plan:
        the model ``name`` (or the experiment splitting it), else the pipeline ``name`` (or the
        experiment splitting it) as ``<name>.pipeline``; a name that is neither stays as it is
        (planning reports it unknown). Names already addressing a pipeline, graph or experiment
        are kept. Outside ``default``, the deployment's resources carry the namespace in their
        names (``importers.namespaces.native_name``); a name that already does is kept."""
        name = service_name(name, namespace)
        if flow_of(name) is not None or name.endswith(EXPERIMENT_SUFFIX):
            return name
        if self._handler.knows(name) or self._experiments.splits(name):
            return name
        pipeline = f"{name}{PIPELINE_SUFFIX}"
        if (self._dataflow is not None and self._dataflow.knows(PIPELINE, name)) or self._experiments.splits(
            pipeline
        ):
            return pipeline
        return name

    async def plan(self, inbound: Inbound) -> Plan:
        """Where an inference request goes; raises only for an unknown ``x.experiment``.

        The adapters call ``authenticate`` first, once per request, at their entry (every route
        but the probes needs it, not only those that plan)."""
        routed = self._experiments.route(self._asked(inbound), inbound.headers)
        name = routed.model
        flow = flow_of(name)
        if flow is not None and self._dataflow is not None:
            known = self._dataflow.knows(*flow)
        else:
            flow = None
            known = self._handler.knows(name)
        return Plan(
            name=name,
            flow=flow,
            metric_label=name if known else UNKNOWN_MODEL,
            route_header=routed.route_header,
            mirror=routed.mirror,
        )

    def held_model(self, inbound: Inbound) -> str | None:
        """The model a request would wait for right now (known, no ready replica), else None.

        Asked before a body is read (held_bytes.py reserves its size); no auth here: the
        request is refused or planned once it is complete."""
        name = self._asked(inbound)
        try:
            name = self._experiments.route(name, inbound.headers).model
        except Exception:  # an unknown experiment is refused later, with the whole request
            return None
        if flow_of(name) is not None or not self._handler.knows(name):
            return None
        try:
            self._handler.ready_target(name, inbound.version)
        except RetryableError:
            return name
        except Exception:  # an unknown version: refused later
            return None
        return None

    async def target(
        self, model: str, version: str | None, size: int, reserved: Reservation | None = None
    ) -> Target:
        """The model's ready target; while it has none the request is held, its ``size`` bytes
        counted against the held-bytes bounds (503 with Retry-After beyond them) unless the
        server reserved them already (``reserved``, taken before the body was read)."""
        try:
            return self._handler.ready_target(model, version)
        except RetryableError:
            pass
        if reserved is not None:
            # Counted once: an experiment may have drawn another cold candidate at the head than
            # now, the bytes stay under the first one's name (the total is right either way).
            return await self._handler.wait_ready_target(model, version)
        with self._held_bytes.reserve(model, size):
            return await self._handler.wait_ready_target(model, version)
