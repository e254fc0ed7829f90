"""Writing desired state: versioned KV writes, the checks that span stored resources, and the
foreign resources' records with the native resources they own.

Design: ``ControlHandler`` decides who may do what; this class does the writing once it has.
``write`` versions a resource the Kubernetes way (a new resource gets generation 1, a change of
spec/labels/annotations bumps it, an identical write stores nothing) under the revision it read,
re-reading and deciding again when a concurrent writer got there first. After every change a
thin event (names, not state) is published so that the scheduler and the status service re-read
KV. ``admit`` holds the checks that read other stored resources (storage policy, an experiment's
baseline, a server's replica cap); ``admit_plan`` runs them, and ownership, for every resource
of an apply before anything is written.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, Protocol

import structlog

from modelplane.libs import subjects
from modelplane.libs.auth.tokens import Principal
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.errors import ConflictError, InvalidError, ModelplaneError
from modelplane.libs.resources.replica_cap import check_server_replicas
from modelplane.libs.resources.types import Experiment, Kind, Resource, Server
from modelplane.libs.store import TypedBucket
from modelplane.proto import events_pb2
from modelplane.services.api import authz
from modelplane.services.api.foreign import (
    ApplyPlan,
    ForeignEntry,
    ForeignStore,
    PlannedForeign,
    derived,
    keeping_scale,
    new_entry,
    owner_of,
    stale,
    validate_derived,
    with_index,
)
from modelplane.services.api.kinds import CODECS, normalized, read_all, same_content
from modelplane.services.api.storage_policy import StoragePolicy

log = structlog.get_logger(__name__)

Outcome = Literal["created", "configured", "unchanged"]

EVENT_SOURCE: Final = "api"
EVENT_SCHEMA_VERSION: Final = 1
# How many times a write re-reads and retries after losing a revision race.
APPLY_ATTEMPTS: Final = 5


class Publisher(Protocol):
    """What the writer needs from a NATS client (nats.aio.client.Client satisfies it)."""

    async def publish(self, subject: str, payload: bytes = b"") -> None: ...


class DesiredState:
    """The api's writes to the desired-state buckets (and KV_FOREIGN)."""

    def __init__(
        self,
        resources: Mapping[Kind, TypedBucket[Any]],
        publisher: Publisher,
        foreign: ForeignStore | None,
        max_server_replicas: int,
        storage_policy: StoragePolicy | None,
    ) -> None:
        self._resources = resources
        self._publisher = publisher
        self._foreign = foreign
        self._max_server_replicas = max_server_replicas
        self._storage_policy = storage_policy

    @property
    def foreign(self) -> ForeignStore:
        if self._foreign is None:
            raise InvalidError("this api accepts native manifests only", field="apiVersion")
        return self._foreign

    async def admit(self, incoming: Resource) -> None:
        """The checks that span the stored state: where a model's storage may be, an experiment's
        baseline, a server's replica cap."""
        if self._storage_policy is not None:
            await self._storage_policy.check(incoming)
        if isinstance(incoming, Experiment):
            await self._check_baseline(incoming)
        if isinstance(incoming, Server):
            check_server_replicas(incoming.spec, self._max_server_replicas)

    async def admit_plan(self, principal: Principal, the_plan: ApplyPlan, count: int) -> ApplyPlan:
        """Authorize and admit every resource of ``the_plan`` (nothing is written yet); returns
        what to write: the plan without the stored dependents that no longer admit (they keep
        what they had, logged), as a dependent never fails another resource's apply."""
        claimed: dict[tuple[str, str], str] = {}
        admitted: list[PlannedForeign] = []
        for index, resource in the_plan.natives:
            try:
                authz.authorize(principal, "apply", resource.kind)
                incoming = normalized(resource)
                await self.check_not_owned(incoming.kind, incoming.meta.name, "")
                await self.admit(incoming)
            except ModelplaneError as exc:
                raise with_index(exc, index, count) from exc
            claimed[(resource.kind, resource.meta.name)] = ""
        for planned in the_plan.foreign:
            owner = owner_of(planned.parsed.ref)
            claims: dict[tuple[str, str], str] = {}
            try:
                if planned.index is not None:
                    authz.authorize_foreign(principal, "apply", planned.parsed.ref.kind)
                for resource in derived(planned):
                    checked = validate_derived(resource)
                    key = (checked.kind, checked.meta.name)
                    if claimed.get(key, owner) != owner:
                        raise InvalidError(
                            f"{checked.kind} {checked.meta.name} would also be derived from "
                            f"{claimed[key] or 'a native document'} of this apply",
                            field="metadata.name",
                        )
                    claims[key] = owner
                    await self.check_not_owned(checked.kind, checked.meta.name, owner)
                    await self.admit(normalized(checked))
            except ModelplaneError as exc:
                if planned.index is None:
                    log.warning("foreign_rederive_refused", resource=str(planned.parsed.ref), error=str(exc))
                    continue
                raise with_index(exc, planned.index, count) from exc
            claimed.update(claims)
            admitted.append(planned)
        return ApplyPlan(the_plan.natives, tuple(admitted))

    async def check_not_owned(self, kind: Kind, name: str, owner: str) -> None:
        """InvalidError unless the stored ``kind``/``name`` is absent or owned by ``owner``."""
        found = await self._resources[kind].try_get(name)
        if found is None:
            return
        existing_owner = CODECS[kind].from_pb(found.value).meta.owner
        if existing_owner == owner:
            return
        if owner and not existing_owner:
            raise InvalidError(
                f"{kind} {name} already exists (applied directly); delete it or rename this resource",
                field="metadata.name",
            )
        raise InvalidError(
            f"{kind} {name} is owned by {existing_owner}; change or delete that instead",
            field="metadata.name",
        )

    async def write_foreign(self, planned: PlannedForeign) -> tuple[ForeignEntry, Outcome]:
        """Store the record, then its derived resources, then delete what it no longer derives."""
        entry = new_entry(planned, now_rfc3339())
        natives = [normalized(validate_derived(r)) for r in derived(planned)]
        outcome: Outcome = "created" if planned.previous is None else "unchanged"
        if planned.previous is not None and entry != planned.previous:
            outcome = "configured"
        if outcome != "unchanged":
            await self.foreign.put(entry, planned.revision)
            log.info("foreign_applied", resource=str(entry.ref), outcome=outcome, generation=entry.generation)
        for resource in natives:
            _, native_outcome = await self.write(resource.kind, resource.meta.name, keeping_scale(resource))
            if native_outcome != "unchanged" and outcome == "unchanged":
                outcome = "configured"
        for kind, name in stale(planned.previous, entry.owned):
            await self.delete_native(kind, name)
        return entry, outcome

    async def delete_native(self, kind: Kind, name: str) -> None:
        bucket = self._resources[kind]
        if await bucket.try_get(name) is None:
            return
        await bucket.delete(name)
        log.info("resource_deleted", kind=kind, name=name)
        await self.publish("deleted", kind, name, {})

    async def write(
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
            await self.publish(
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

    async def publish(self, type_: str, kind: str, name: str, attributes: Mapping[str, str]) -> None:
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
