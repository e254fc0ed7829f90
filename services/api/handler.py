"""The control API's logic, independent of gRPC and REST: who is calling, what they may do,
and desired state.

Design: adapters translate and pass the caller's bearer token to ``authenticate``, then the
``Principal`` it returns to every call; each call first asks ``authz`` (the one place roles are
decided) and only then reads or writes anything, so a refused call changes nothing. Tokens are
verified from memory (``TokenStore``) and administered here (admin only).

Desired state lives in one KV bucket per kind (key = resource name, value = protobuf via
``libs.resources.convert``; see ``kinds``); ``desired.DesiredState`` writes it, versioned the
Kubernetes way under the revision it read, and publishes a thin event after every change.

Every typed resource, however it arrives, is validated by the same code that validates user
manifests (``kinds.validate``). Experiments are desired state like the rest (KV_EXPERIMENTS, read
by the gateways); the rule that spans resources (a model is the baseline, ``default``, of at
most one experiment) is checked against the stored experiments before writing.

Foreign kinds (KServe InferenceService, Seldon v1 SeldonDeployment, ...; see ``foreign``) are
stored as written in KV_FOREIGN and applied as the native resources their importers derive, owned
by them: every document of an apply is parsed, translated and admitted before anything is
written (all or nothing), a change re-derives the owned resources (those no longer produced are
deleted), deleting the owner deletes them, and a native resource owned by a foreign one cannot
be applied or deleted on its own. Their status is computed on read (``foreign_status``).

Observed state (statuses, replicas, the live streams) is read by ``statuses.StatusReader``.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
import secrets
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Final

import structlog
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.auth.roles import parse_role
from modelplane.libs.auth.tokens import Principal, TokenAdmin, TokenInfo, TokenStore, check_token_name
from modelplane.libs.errors import (
    InvalidError,
    ModelplaneError,
    NotFoundError,
    RetryableError,
    UnauthenticatedError,
)
from modelplane.libs.resources.importers.base import DEFAULT_NAMESPACE, StatusContext
from modelplane.libs.resources.manifests import to_manifest
from modelplane.libs.resources.replica_cap import DEFAULT_MAX_SERVER_REPLICAS, check_server_replicas
from modelplane.libs.resources.types import KINDS, Kind, Model, Pipeline, Resource, Server
from modelplane.libs.store import TypedBucket
from modelplane.proto import resources_pb2, state_pb2
from modelplane.services.api import authz
from modelplane.services.api.desired import DesiredState, Outcome, Publisher
from modelplane.services.api.foreign import (
    ApplyPlan,
    ForeignEntry,
    ForeignStore,
    dependents_of,
    foreign_ref,
    plan,
    replacing,
    stale,
    with_index,
)
from modelplane.services.api.foreign_status import ForeignView, foreign_views
from modelplane.services.api.inspect import Inspection, PipelineInspector
from modelplane.services.api.kinds import (
    BUCKETS,
    CODECS,
    normalized,
    read_all,
    read_resource,
    validate,
)
from modelplane.services.api.statuses import FollowItem, ProgressFeed, StatusReader, WatchType
from modelplane.services.api.storage_policy import StoragePolicy

log = structlog.get_logger(__name__)

# What one document of an apply became: a native resource, or a foreign one.
Applied = tuple[Resource | ForeignEntry, Outcome]

# Request ids are subject tokens of the dataflow stream (hex from the gateway; callers publishing
# requests themselves may choose their own).
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9_-]+")
_NO_TOKEN: Final = "a valid bearer token is required (Authorization: Bearer <token>)"


class ControlHandler:
    """Authenticate and authorize every call; apply/get/list/delete desired state; read and
    watch observed state; administer tokens."""

    def __init__(
        self,
        resources: Mapping[Kind, TypedBucket[Any]],
        statuses: StatusReader,
        publisher: Publisher,
        tokens: TokenAdmin,
        inspector: PipelineInspector | None = None,
        max_server_replicas: int = DEFAULT_MAX_SERVER_REPLICAS,
        storage_policy: StoragePolicy | None = None,
        foreign: ForeignStore | None = None,
        status_context: StatusContext | None = None,
    ) -> None:
        self._resources = resources
        # Foreign resources (None: this api accepts native manifests only).
        self._foreign = foreign
        self._desired = DesiredState(resources, publisher, foreign, max_server_replicas, storage_policy)
        self._status_context = status_context or StatusContext(gateway_url="")
        self._statuses = statuses
        self._publisher = publisher
        self._tokens = tokens
        # Most replicas of a Server without maxReplicas (more is refused, naming spec.replicas).
        self._max_server_replicas = max_server_replicas
        # Where a Model's storageUri may point (None: not checked; the app always passes one).
        self._storage_policy = storage_policy
        # Reads step records from the dataflow stream (None: inspect is unavailable).
        self._inspector = inspector

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        publisher: Publisher,
        progress: ProgressFeed | None = None,
        *,
        max_server_replicas: int = DEFAULT_MAX_SERVER_REPLICAS,
        storage_policy: StoragePolicy | None = None,
        status_context: StatusContext | None = None,
    ) -> ControlHandler:
        """Open the buckets the handler uses (they must exist: see ``store.ensure_buckets``) and
        load the tokens."""
        resources: dict[Kind, TypedBucket[Any]] = {
            kind: await TypedBucket.open(js, BUCKETS[kind], CODECS[kind].message) for kind in KINDS
        }
        statuses = StatusReader(
            resources,
            await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus),
            await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo),
            progress,
            await TypedBucket.open(js, subjects.KV_DATAFLOW, state_pb2.DataflowState),
        )
        tokens = await TokenStore.open(js)
        await tokens.start()
        return cls(
            resources,
            statuses,
            publisher,
            tokens,
            PipelineInspector(js),
            max_server_replicas=max_server_replicas,
            storage_policy=storage_policy,
            foreign=ForeignStore(
                await TypedBucket.open(js, subjects.KV_FOREIGN, resources_pb2.ForeignRecord)
            ),
            status_context=status_context,
        )

    # ---- who is calling -----------------------------------------------------------------------

    async def authenticate(self, token: str | None) -> Principal:
        """The caller of a bearer token; UnauthenticatedError when it is missing or unknown."""
        principal = await self._tokens.verify(token) if token else None
        if principal is None:
            raise UnauthenticatedError(_NO_TOKEN)
        return principal

    # ---- desired state ------------------------------------------------------------------------

    async def apply_manifest(self, principal: Principal, doc: Any) -> Applied:
        """Validate a manifest (native or foreign) and apply what it describes."""
        return (await self.apply_manifests(principal, [doc]))[0]

    async def apply_manifests(self, principal: Principal, docs: Sequence[Any]) -> builtins.list[Applied]:
        """Apply several manifests, all or nothing: every one is parsed, translated, authorized
        and admitted before the first is written. Results are in document order."""
        authz.authorize(principal, "apply")
        for index, doc in enumerate(docs):
            try:
                authz.check_content(principal, doc)
            except ModelplaneError as exc:
                raise with_index(exc, index, len(docs)) from exc
        stored = await self._foreign.all() if self._foreign is not None else []
        the_plan = plan(docs, stored)
        if the_plan.foreign and self._foreign is None:
            raise InvalidError("this api accepts native manifests only", field="apiVersion")
        the_plan = await self._desired.admit_plan(principal, the_plan, len(docs))
        results: dict[int, Applied] = {}
        for index, resource in the_plan.natives:
            incoming = normalized(resource)
            results[index] = await self._desired.write(incoming.kind, incoming.meta.name, replacing(incoming))
        for planned in the_plan.foreign:
            entry, outcome = await self._desired.write_foreign(planned)
            if planned.index is not None:
                results[planned.index] = (entry, outcome)
        return [results[index] for index in range(len(docs))]

    async def apply(self, principal: Principal, resource: Resource) -> tuple[Resource, Outcome]:
        """Store ``resource``, versioning it; returns the stored resource and what happened."""
        authz.authorize(principal, "apply", resource.kind)
        checked = validate(resource)
        authz.check_content(principal, to_manifest(checked))
        incoming = normalized(checked)
        await self._desired.check_not_owned(incoming.kind, incoming.meta.name, "")
        await self._desired.admit(incoming)
        return await self._desired.write(incoming.kind, incoming.meta.name, lambda _existing: incoming)

    async def scale(
        self, principal: Principal, kind: Kind, name: str, replicas: int, reason: str = ""
    ) -> tuple[Resource, Outcome]:
        """Set only the replicas of a Model or Server (``kubectl scale``; what the autoscaler
        uses): read, change and write under the stored revision, so a concurrent edit of any other
        field is never overwritten with a stale copy."""
        authz.authorize(principal, "scale", kind)
        if kind not in ("Model", "Server"):
            raise InvalidError(f"only Models and Servers have replicas, not {kind}s", field="kind")
        if replicas < 0:
            raise InvalidError(f"must be >= 0, got {replicas}", field="replicas")

        def scaled(existing: Resource | None) -> Resource:
            if existing is None:
                raise NotFoundError(f"{kind} {name!r} not found")
            if isinstance(existing, Model):
                return validate(
                    dataclasses.replace(existing, spec=dataclasses.replace(existing.spec, replicas=replicas))
                )
            assert isinstance(existing, Server)
            server = validate(
                dataclasses.replace(existing, spec=dataclasses.replace(existing.spec, replicas=replicas))
            )
            assert isinstance(server, Server)
            check_server_replicas(server.spec, self._max_server_replicas)
            return server

        return await self._desired.write(kind, name, scaled, {"replicas": str(replicas), "reason": reason})

    async def get(self, principal: Principal, kind: Kind, name: str) -> Resource:
        authz.authorize(principal, "read")
        return await read_resource(self._resources[kind], kind, name)

    async def list(self, principal: Principal, kind: Kind) -> builtins.list[Resource]:
        authz.authorize(principal, "read")
        return await read_all(self._resources[kind], kind)

    async def delete(self, principal: Principal, kind: Kind, name: str) -> str:
        """Remove a resource; the scheduler unloads what it placed. Returns the outcome ``deleted``."""
        authz.authorize(principal, "delete", kind)
        found = await self._resources[kind].try_get(name)
        if found is None:
            raise NotFoundError(f"{kind} {name!r} not found")
        owner = CODECS[kind].from_pb(found.value).meta.owner
        if owner:
            raise InvalidError(f"{kind} {name} is owned by {owner}; delete that instead", field="name")
        await self._desired.delete_native(kind, name)
        return "deleted"

    # ---- foreign kinds ------------------------------------------------------------------------

    async def delete_foreign(
        self, principal: Principal, kind: str, name: str, namespace: str = DEFAULT_NAMESPACE
    ) -> str:
        """Delete a foreign resource and every native resource derived from it; the stored
        resources that depend on it are derived again (a TrainedModel without its parent)."""
        authz.authorize_foreign(principal, "delete", kind)
        store = self._desired.foreign
        ref = foreign_ref(kind, name, namespace)
        found = await store.get(ref)
        if found is None:
            raise NotFoundError(f"{kind} {name!r} not found in namespace {namespace!r}")
        entry, _ = found
        await store.delete(ref)
        log.info("foreign_deleted", resource=str(ref))
        for owned_kind, owned_name in stale(entry, ()):
            await self._desired.delete_native(owned_kind, owned_name)
        dependents = ApplyPlan((), tuple(dependents_of({kind}, await store.all(), {ref.key()})))
        for planned in (await self._desired.admit_plan(principal, dependents, 0)).foreign:
            await self._desired.write_foreign(planned)
        return "deleted"

    async def get_foreign(
        self, principal: Principal, kind: str, name: str, namespace: str = DEFAULT_NAMESPACE
    ) -> ForeignView:
        """What was applied, with its status in the kind's own shape."""
        authz.authorize(principal, "read")
        found = await self._desired.foreign.get(foreign_ref(kind, name, namespace))
        if found is None:
            raise NotFoundError(f"{kind} {name!r} not found in namespace {namespace!r}")
        return (await foreign_views([found[0]], self._resources, self._statuses, self._status_context))[0]

    async def list_foreign(self, principal: Principal, kind: str) -> builtins.list[ForeignView]:
        """Every resource of a foreign kind, in every namespace, with its status."""
        authz.authorize(principal, "read")
        entries = [e for e, _ in await self._desired.foreign.all() if e.ref.kind == kind]
        return await foreign_views(entries, self._resources, self._statuses, self._status_context)

    # ---- observed state -----------------------------------------------------------------------

    async def get_status(self, principal: Principal, kind: Kind, name: str) -> state_pb2.ResourceStatus:
        """The derived status; a placeholder while the status service has not written one yet."""
        authz.authorize(principal, "read")
        return await self._statuses.get_status(kind, name)

    async def list_status(self, principal: Principal, kind: Kind) -> builtins.list[state_pb2.ResourceStatus]:
        authz.authorize(principal, "read")
        return await self._statuses.list_status(kind)

    async def server_replicas(self, principal: Principal, name: str) -> builtins.list[state_pb2.ReplicaInfo]:
        authz.authorize(principal, "read")
        return await self._statuses.server_replicas(name)

    async def watch_status(
        self, principal: Principal, kind: Kind, name: str = ""
    ) -> AsyncGenerator[tuple[WatchType, state_pb2.ResourceStatus], None]:
        """Current statuses, then every change; all resources of ``kind`` when ``name`` is empty."""
        authz.authorize(principal, "read")
        stream = self._statuses.watch_status(kind, name)
        try:
            async for item in stream:
                yield item
        finally:
            await stream.aclose()

    async def follow_model(self, principal: Principal, name: str) -> AsyncGenerator[FollowItem, None]:
        """A model's status, then its status changes and live download reports (StatusReader)."""
        authz.authorize(principal, "read")
        stream = self._statuses.follow_model(name)
        try:
            async for item in stream:
                yield item
        finally:
            await stream.aclose()

    @property
    def following(self) -> int:
        """How many follow_model streams are open (progress subscriptions included)."""
        return self._statuses.following

    async def inspect_pipeline(
        self, principal: Principal, name: str, step: str = "", request_id: str = ""
    ) -> Inspection:
        """The last messages of a pipeline's request and steps (the latest request by default)."""
        authz.authorize(principal, "read")
        pipeline = await read_resource(self._resources["Pipeline"], "Pipeline", name)
        assert isinstance(pipeline, Pipeline)
        steps = [s.name for s in pipeline.spec.steps]
        if step and step not in steps:
            raise InvalidError(
                f"pipeline {name} has no step {step!r} (steps: {', '.join(steps)})", field="step"
            )
        if request_id and not _REQUEST_ID.fullmatch(request_id):
            raise InvalidError(
                f"{request_id!r} is not a request id (letters, digits, '-' and '_')", field="request_id"
            )
        if self._inspector is None:
            raise RetryableError(
                "inspecting pipelines needs the dataflow stream, which this api does not read"
            )
        return await self._inspector.inspect(pipeline, step, request_id)

    # ---- tokens (admin only) ------------------------------------------------------------------

    async def create_token(self, principal: Principal, role: str, name: str = "") -> tuple[str, str]:
        """A new token for ``role``; returns (name, token). Without a name, one is made up."""
        authz.authorize(principal, "tokens")
        checked = parse_role(role)
        name = check_token_name(name) if name else f"{checked}-{secrets.token_hex(3)}"
        token = await self._tokens.create(name, checked)
        log.info("token_created_by", name=name, role=checked, by=principal.name)
        return name, token

    async def list_tokens(self, principal: Principal) -> builtins.list[TokenInfo]:
        authz.authorize(principal, "tokens")
        return await self._tokens.list()

    async def revoke_token(self, principal: Principal, name: str) -> None:
        authz.authorize(principal, "tokens")
        await self._tokens.revoke(check_token_name(name))
        log.info("token_revoked_by", name=name, by=principal.name)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the follow pumps and watches (see StatusReader.close), then the token watch."""
        await self._statuses.close(timeout)
        await self._tokens.close()
