"""The control API's logic, independent of gRPC and REST: who is calling, what they may do,
and desired state.

Design: adapters translate and pass the caller's bearer token to ``authenticate``, then the
``Principal`` it returns to every call; each call first asks ``authz`` (the one place roles are
decided) and only then reads or writes anything, so a refused call changes nothing. Tokens are
verified from memory (``TokenStore``) and administered here (admin only).

Desired state lives in one KV bucket per kind (key = resource name, value = protobuf via
``libs.resources.convert``; see ``kinds``). ``apply`` versions a resource the Kubernetes way: a
new resource gets generation 1, a change of spec/labels/annotations bumps the generation, an
identical apply writes nothing. Writes carry the revision that was read (create /
update-with-revision); when a concurrent writer wins, the handler re-reads and decides again, a
few times, before it reports the conflict. After every change a thin event (names, not state) is
published so that the scheduler and the status service re-read KV.

Every typed resource, however it arrives, is validated by the same code that validates user
manifests (``kinds.validate``). Experiments are desired state like the rest (KV_EXPERIMENTS, read
by the gateways); the rule that spans resources (a model is the baseline, ``default``, of at
most one experiment) is checked here against the stored experiments before writing.

Observed state (statuses, replicas, the live streams) is read by ``statuses.StatusReader``.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
import secrets
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any, Final, Literal, Protocol

import structlog
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.auth.roles import parse_role
from modelplane.libs.auth.tokens import Principal, TokenAdmin, TokenInfo, TokenStore, check_token_name
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.errors import (
    ConflictError,
    InvalidError,
    NotFoundError,
    RetryableError,
    UnauthenticatedError,
)
from modelplane.libs.resources.manifests import parse_manifest, to_manifest
from modelplane.libs.resources.replica_cap import DEFAULT_MAX_SERVER_REPLICAS, check_server_replicas
from modelplane.libs.resources.types import KINDS, Experiment, Kind, Model, Pipeline, Resource, Server
from modelplane.libs.store import TypedBucket
from modelplane.proto import events_pb2, state_pb2
from modelplane.services.api import authz
from modelplane.services.api.inspect import Inspection, PipelineInspector
from modelplane.services.api.kinds import (
    BUCKETS,
    CODECS,
    normalized,
    read_all,
    read_resource,
    same_content,
    validate,
)
from modelplane.services.api.statuses import FollowItem, ProgressFeed, StatusReader, WatchType
from modelplane.services.api.storage_policy import StoragePolicy

log = structlog.get_logger(__name__)

Outcome = Literal["created", "configured", "unchanged"]

EVENT_SOURCE: Final = "api"
EVENT_SCHEMA_VERSION: Final = 1
# How many times apply re-reads and retries after losing a revision race.
APPLY_ATTEMPTS: Final = 5
# Request ids are subject tokens of the dataflow stream (hex from the gateway; callers publishing
# requests themselves may choose their own).
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9_-]+")
_NO_TOKEN: Final = "a valid bearer token is required (Authorization: Bearer <token>)"


class Publisher(Protocol):
    """What the handler needs from a NATS client (nats.aio.client.Client satisfies it)."""

    async def publish(self, subject: str, payload: bytes = b"") -> None: ...


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
    ) -> None:
        self._resources = resources
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
        )

    # ---- who is calling -----------------------------------------------------------------------

    async def authenticate(self, token: str | None) -> Principal:
        """The caller of a bearer token; UnauthenticatedError when it is missing or unknown."""
        principal = await self._tokens.verify(token) if token else None
        if principal is None:
            raise UnauthenticatedError(_NO_TOKEN)
        return principal

    # ---- desired state ------------------------------------------------------------------------

    async def apply_manifest(self, principal: Principal, doc: Any) -> tuple[Resource, Outcome]:
        """Validate a manifest (native or imported) and apply the resource it describes."""
        return (await self.apply_manifests(principal, [doc]))[0]

    async def apply_manifests(
        self, principal: Principal, docs: Sequence[Any]
    ) -> builtins.list[tuple[Resource, Outcome]]:
        """Apply several manifests in order, once every one of them is valid and allowed."""
        authz.authorize(principal, "apply")
        for doc in docs:
            authz.check_content(principal, doc)
        resources = [parse_manifest(doc) for doc in docs]
        for resource in resources:
            authz.authorize(principal, "apply", resource.kind)
        return [await self._apply_valid(resource) for resource in resources]

    async def apply(self, principal: Principal, resource: Resource) -> tuple[Resource, Outcome]:
        """Store ``resource``, versioning it; returns the stored resource and what happened."""
        authz.authorize(principal, "apply", resource.kind)
        checked = validate(resource)
        authz.check_content(principal, to_manifest(checked))
        return await self._apply_valid(checked)

    async def _apply_valid(self, resource: Resource) -> tuple[Resource, Outcome]:
        incoming = normalized(resource)
        if self._storage_policy is not None:
            await self._storage_policy.check(incoming)
        if isinstance(incoming, Experiment):
            await self._check_baseline(incoming)
        if isinstance(incoming, Server):
            check_server_replicas(incoming.spec, self._max_server_replicas)
        return await self._write(incoming.kind, incoming.meta.name, lambda _existing: incoming)

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

        return await self._write(kind, name, scaled, {"replicas": str(replicas), "reason": reason})

    async def get(self, principal: Principal, kind: Kind, name: str) -> Resource:
        authz.authorize(principal, "read")
        return await read_resource(self._resources[kind], kind, name)

    async def list(self, principal: Principal, kind: Kind) -> builtins.list[Resource]:
        authz.authorize(principal, "read")
        return await read_all(self._resources[kind], kind)

    async def delete(self, principal: Principal, kind: Kind, name: str) -> str:
        """Remove a resource; the scheduler unloads what it placed. Returns the outcome ``deleted``."""
        authz.authorize(principal, "delete", kind)
        bucket = self._resources[kind]
        found = await bucket.try_get(name)
        if found is None:
            raise NotFoundError(f"{kind} {name!r} not found")
        await bucket.delete(name)
        log.info("resource_deleted", kind=kind, name=name)
        await self._publish("deleted", kind, name, {})
        return "deleted"

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

    # ---- writing ------------------------------------------------------------------------------

    async def _write(
        self,
        kind: Kind,
        name: str,
        change: Callable[[Resource | None], Resource],
        attributes: Mapping[str, str] | None = None,
    ) -> tuple[Resource, Outcome]:
        """Store ``change(stored or None)``, versioning it, under the stored revision (retried
        when another writer got there first)."""
        bucket = self._resources[kind]
        codec = CODECS[kind]
        for _ in range(APPLY_ATTEMPTS):
            current = await bucket.try_get(name)
            existing = codec.from_pb(current.value) if current is not None else None
            incoming = change(existing)
            try:
                if current is None or existing is None:
                    stored = _with_meta(incoming, generation=1, created_at=now_rfc3339())
                    await bucket.create(name, codec.to_pb(stored))
                    outcome: Outcome = "created"
                else:
                    if same_content(existing, incoming):
                        return existing, "unchanged"
                    stored = _with_meta(
                        incoming,
                        generation=existing.meta.generation + 1,
                        created_at=existing.meta.created_at,
                    )
                    await bucket.update(name, codec.to_pb(stored), current.revision)
                    outcome = "configured"
            except ConflictError:
                log.info("apply_conflict_retry", kind=kind, name=name)
                continue
            log.info(
                "resource_applied",
                kind=stored.kind,
                name=name,
                outcome=outcome,
                generation=stored.meta.generation,
                **(attributes or {}),
            )
            await self._publish(
                "applied",
                stored.kind,
                name,
                {"generation": str(stored.meta.generation), **(attributes or {})},
            )
            return stored, outcome
        raise ConflictError(
            f"{kind} {name} kept changing concurrently; gave up after {APPLY_ATTEMPTS} attempts"
        )

    async def _check_baseline(self, experiment: Experiment) -> None:
        """InvalidError when another experiment already has the same ``default`` (Seldon's rule:
        a resource is the baseline of at most one experiment)."""
        default = experiment.spec.default
        if not default:
            return
        for other in await read_all(self._resources["Experiment"], "Experiment"):
            if (
                isinstance(other, Experiment)
                and other.meta.name != experiment.meta.name
                and other.spec.default == default
            ):
                raise InvalidError(
                    f"{default} is already the baseline of experiment {other.meta.name}; "
                    "a resource is the baseline of at most one experiment",
                    field="spec.default",
                )

    async def _publish(self, type_: str, kind: str, name: str, attributes: Mapping[str, str]) -> None:
        event = events_pb2.Event(
            id=uuid.uuid4().hex,
            source=EVENT_SOURCE,
            type=type_,
            schema_version=EVENT_SCHEMA_VERSION,
            kind=kind,
            name=name,
            time=now_rfc3339(),
            attributes=dict(attributes),
        )
        await self._publisher.publish(subjects.resource_event(kind, name), event.SerializeToString())


def _with_meta(resource: Resource, *, generation: int, created_at: str) -> Resource:
    meta = dataclasses.replace(resource.meta, generation=generation, created_at=created_at)
    return dataclasses.replace(resource, meta=meta)
