"""The control API's logic, independent of gRPC and REST.

Design: desired state lives in one KV bucket per kind (key = resource name, value = protobuf via
``libs.resources.convert``). ``apply`` versions a resource the Kubernetes way: a new resource gets
generation 1, a change of spec/labels/annotations bumps the generation, an identical apply
writes nothing. Writes carry the revision that was read (create / update-with-revision); when a
concurrent writer wins, the handler re-reads and decides again, a few times, before it reports
the conflict. After every change a thin event (names, not state) is published so that the
scheduler and the status service re-read KV.

Every typed resource, however it arrives, is validated by the same code that validates user
manifests (``parse_manifest``): a typed resource is rendered to its native manifest and parsed
back, so names, replica bounds and required fields are checked in exactly one place.

Observed state (statuses, replicas) has no domain type in libs; it is read-only here and is
returned as the ``state_pb2`` messages the status service and the agents write.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, Final, Literal, Protocol

import structlog
from google.protobuf.message import Message
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.clock import now_rfc3339
from modelplane.libs.errors import ConflictError, InvalidError, NotFoundError
from modelplane.libs.resources import convert
from modelplane.libs.resources.manifests import parse_manifest, to_manifest
from modelplane.libs.resources.types import KINDS, Kind, Model, Resource, Server
from modelplane.libs.store import TypedBucket
from modelplane.proto import events_pb2, resources_pb2, state_pb2

log = structlog.get_logger(__name__)

Outcome = Literal["created", "configured", "unchanged"]
WatchType = Literal["PUT", "DELETE"]

EVENT_SOURCE: Final = "api"
EVENT_SCHEMA_VERSION: Final = 1
# How many times apply re-reads and retries after losing a revision race.
APPLY_ATTEMPTS: Final = 5
WAITING_REASON: Final = "waiting for status"
# State reported for a resource that exists but whose status was not derived yet.
_INITIAL_STATE: Final[Mapping[str, str]] = {
    "Model": "ModelStateUnknown",
    "Server": "ServerNotReady",
    "ServerConfig": "Unknown",
}
_BUCKETS: Final[Mapping[str, str]] = {
    "Model": subjects.KV_MODELS,
    "Server": subjects.KV_SERVERS,
    "ServerConfig": subjects.KV_SERVER_CONFIGS,
}
# Spellings accepted for a kind: "Model", "model", "models", "serverconfigs", ...
_KIND_ALIASES: Final[Mapping[str, Kind]] = {
    alias: kind
    for kind in KINDS
    for alias in (kind.lower(), kind.lower() + "s", {"ServerConfig": "server-config"}.get(kind, kind.lower()))
}


def parse_kind(value: str) -> Kind:
    """The canonical kind for a user's spelling; InvalidError naming the field ``kind`` otherwise."""
    kind = _KIND_ALIASES.get(value.strip().lower())
    if kind is None:
        raise InvalidError(f"unknown kind {value!r}; supported: {', '.join(KINDS)}", field="kind")
    return kind


class Publisher(Protocol):
    """What the handler needs from a NATS client (nats.aio.client.Client satisfies it)."""

    async def publish(self, subject: str, payload: bytes = b"") -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class _Codec:
    """How one kind is stored: its protobuf message type and the to/from converters."""

    message: type[Message]
    to_pb: Callable[[Any], Message]
    from_pb: Callable[[Any], Resource]


_CODECS: Final[Mapping[str, _Codec]] = {
    "Model": _Codec(resources_pb2.Model, convert.model_to_pb, convert.model_from_pb),
    "Server": _Codec(resources_pb2.Server, convert.server_to_pb, convert.server_from_pb),
    "ServerConfig": _Codec(
        resources_pb2.ServerConfig, convert.server_config_to_pb, convert.server_config_from_pb
    ),
}


def _normalized(resource: Resource) -> Resource:
    """The resource as it reads back from KV (proto defaults applied), for change detection."""
    codec = _CODECS[resource.kind]
    return codec.from_pb(codec.to_pb(resource))


def _same_content(a: Resource, b: Resource) -> bool:
    return a.spec == b.spec and a.meta.labels == b.meta.labels and a.meta.annotations == b.meta.annotations


def validate(resource: Resource) -> Resource:
    """Check a typed resource with the manifest rules (InvalidError naming the field)."""
    parsed = parse_manifest(to_manifest(resource))
    return dataclasses.replace(
        parsed, meta=dataclasses.replace(parsed.meta, imported_from=resource.meta.imported_from)
    )


class ControlHandler:
    """Apply/get/list/delete desired state; read and watch observed state."""

    def __init__(
        self,
        resources: Mapping[Kind, TypedBucket[Any]],
        statuses: TypedBucket[state_pb2.ResourceStatus],
        replicas: TypedBucket[state_pb2.ReplicaInfo],
        publisher: Publisher,
    ) -> None:
        self._resources = resources
        self._statuses = statuses
        self._replicas = replicas
        self._publisher = publisher
        # Open watch streams; close() waits for them so their NATS subscriptions end before the
        # connection does (nats-py leaves a consumer's tasks running when unsubscribe fails).
        self._watches = 0
        self._no_watches = asyncio.Event()
        self._no_watches.set()

    @classmethod
    async def open(cls, js: JetStreamContext, publisher: Publisher) -> ControlHandler:
        """Open the buckets the handler uses (they must exist: see ``store.ensure_buckets``)."""
        resources: dict[Kind, TypedBucket[Any]] = {
            kind: await TypedBucket.open(js, _BUCKETS[kind], _CODECS[kind].message) for kind in KINDS
        }
        statuses = await TypedBucket.open(js, subjects.KV_STATUS, state_pb2.ResourceStatus)
        replicas = await TypedBucket.open(js, subjects.KV_REPLICAS, state_pb2.ReplicaInfo)
        return cls(resources, statuses, replicas, publisher)

    # ---- desired state ------------------------------------------------------------------------

    async def apply_manifest(self, doc: Any) -> tuple[Resource, Outcome]:
        """Validate a manifest (native or imported) and apply the resource it describes."""
        return await self._apply_valid(parse_manifest(doc))

    async def apply(self, resource: Resource) -> tuple[Resource, Outcome]:
        """Store ``resource``, versioning it; returns the stored resource and what happened."""
        return await self._apply_valid(validate(resource))

    async def _apply_valid(self, resource: Resource) -> tuple[Resource, Outcome]:
        incoming = _normalized(resource)
        bucket = self._resources[incoming.kind]
        codec = _CODECS[incoming.kind]
        name = incoming.meta.name
        for _ in range(APPLY_ATTEMPTS):
            current = await bucket.try_get(name)
            try:
                if current is None:
                    stored = _with_meta(incoming, generation=1, created_at=now_rfc3339())
                    await bucket.create(name, codec.to_pb(stored))
                    outcome: Outcome = "created"
                else:
                    existing = codec.from_pb(current.value)
                    if _same_content(existing, incoming):
                        return existing, "unchanged"
                    stored = _with_meta(
                        incoming,
                        generation=existing.meta.generation + 1,
                        created_at=existing.meta.created_at,
                    )
                    await bucket.update(name, codec.to_pb(stored), current.revision)
                    outcome = "configured"
            except ConflictError:
                log.info("apply_conflict_retry", kind=incoming.kind, name=name)
                continue
            log.info(
                "resource_applied",
                kind=stored.kind,
                name=name,
                outcome=outcome,
                generation=stored.meta.generation,
            )
            await self._publish("applied", stored.kind, name, {"generation": str(stored.meta.generation)})
            return stored, outcome
        raise ConflictError(
            f"{incoming.kind} {name} kept changing concurrently; gave up after {APPLY_ATTEMPTS} attempts"
        )

    async def get(self, kind: Kind, name: str) -> Resource:
        found = await self._resources[kind].try_get(name)
        if found is None:
            raise NotFoundError(f"{kind} {name!r} not found")
        return _CODECS[kind].from_pb(found.value)

    async def list(self, kind: Kind) -> builtins.list[Resource]:
        codec = _CODECS[kind]
        items = await self._resources[kind].items()
        return sorted((codec.from_pb(item.value) for item in items), key=lambda r: r.meta.name)

    async def delete(self, kind: Kind, name: str) -> str:
        """Remove a resource; the scheduler unloads what it placed. Returns the outcome ``deleted``."""
        bucket = self._resources[kind]
        found = await bucket.try_get(name)
        if found is None:
            raise NotFoundError(f"{kind} {name!r} not found")
        await bucket.delete(name)
        log.info("resource_deleted", kind=kind, name=name)
        await self._publish("deleted", kind, name, {})
        return "deleted"

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

    # ---- observed state -----------------------------------------------------------------------

    async def get_status(self, kind: Kind, name: str) -> state_pb2.ResourceStatus:
        """The derived status; a placeholder while the status service has not written one yet."""
        found = await self._statuses.try_get(subjects.status_key(kind, name))
        if found is not None:
            return found.value
        resource = await self.get(kind, name)  # NotFoundError when neither exists
        return _initial_status(resource)

    async def list_status(self, kind: Kind) -> builtins.list[state_pb2.ResourceStatus]:
        """The status of every resource of ``kind`` (placeholders for those without one yet)."""
        written: dict[str, state_pb2.ResourceStatus] = {
            item.value.name or item.key.split(".", 1)[-1]: item.value
            for item in await self._statuses.items()
            if item.key.startswith(f"{kind}.")
        }
        out: builtins.list[state_pb2.ResourceStatus] = []
        for resource in await self.list(kind):
            status = written.pop(resource.meta.name, None)
            out.append(status if status is not None else _initial_status(resource))
        # A status may outlive its resource for a moment (the resource was just deleted).
        out.extend(written.values())
        return sorted(out, key=lambda s: s.name)

    async def server_replicas(self, name: str) -> builtins.list[state_pb2.ReplicaInfo]:
        """Every registered replica of server ``name``, by index."""
        prefix = f"{name}."
        found = [item.value for item in await self._replicas.items() if item.key.startswith(prefix)]
        return sorted(found, key=lambda r: r.index)

    async def watch_status(
        self, kind: Kind, name: str = ""
    ) -> AsyncGenerator[tuple[WatchType, state_pb2.ResourceStatus], None]:
        """Current statuses, then every change; all resources of ``kind`` when ``name`` is empty."""
        keys = subjects.status_key(kind, name) if name else subjects.status_key(kind, ">")
        stream = self._statuses.watch(keys)
        self._watches += 1
        self._no_watches.clear()
        try:
            async for change in stream:
                if change is None:  # end of the replay of current values
                    continue
                if change.value is None:
                    _, _, key_name = change.key.partition(".")
                    yield "DELETE", state_pb2.ResourceStatus(kind=kind, name=key_name)
                else:
                    yield "PUT", change.value
        finally:
            try:
                await stream.aclose()
            finally:
                self._watches -= 1
                if self._watches == 0:
                    self._no_watches.set()

    async def close(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout`` seconds) until every watch stream has released its subscription."""
        try:
            await asyncio.wait_for(self._no_watches.wait(), timeout)
        except TimeoutError:
            log.warning("watches_still_open", count=self._watches)


def _with_meta(resource: Resource, *, generation: int, created_at: str) -> Resource:
    meta = dataclasses.replace(resource.meta, generation=generation, created_at=created_at)
    return dataclasses.replace(resource, meta=meta)


def _initial_status(resource: Resource) -> state_pb2.ResourceStatus:
    total = resource.spec.replicas if isinstance(resource, Model | Server) else 0
    return state_pb2.ResourceStatus(
        kind=resource.kind,
        name=resource.meta.name,
        state=_INITIAL_STATE[resource.kind],
        reason=WAITING_REASON,
        total_replicas=total,
        generation=resource.meta.generation,
    )
